#include "capture/host_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

namespace stackstream {
namespace agent {
namespace {

std::atomic<int> g_level{static_cast<int>(HostLogLevel::kWarn)};
std::atomic<int> g_fd{2};
std::atomic<uint64_t> g_once{0};

const char* LevelName(HostLogLevel level) {
  switch (level) {
    case HostLogLevel::kError: return "error";
    case HostLogLevel::kWarn: return "warning";
    case HostLogLevel::kInfo: return "info";
    case HostLogLevel::kDebug: return "debug";
    default: return "";
  }
}

void VLog(HostLogLevel level, const char* fmt, va_list ap) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "stackstream[%d]: %s: ", static_cast<int>(getpid()),
                   LevelName(level));
  if (n < 0) return;
  int m = vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n) - 1, fmt, ap);
  if (m < 0) return;
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  ssize_t w = write(g_fd.load(std::memory_order_relaxed), buf, len);
  (void)w;
}

}  // namespace

void InitHostLog(const char* level, const char* file) {
  HostLogLevel l = HostLogLevel::kWarn;
  if (level != nullptr && level[0] != '\0') {
    if (strcmp(level, "off") == 0) l = HostLogLevel::kOff;
    else if (strcmp(level, "error") == 0) l = HostLogLevel::kError;
    else if (strcmp(level, "warn") == 0 || strcmp(level, "warning") == 0) l = HostLogLevel::kWarn;
    else if (strcmp(level, "info") == 0) l = HostLogLevel::kInfo;
    else if (strcmp(level, "debug") == 0 || strcmp(level, "trace") == 0) l = HostLogLevel::kDebug;
  }
  g_level.store(static_cast<int>(l), std::memory_order_relaxed);
  if (file != nullptr && file[0] != '\0' && l != HostLogLevel::kOff) {
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      g_fd.store(fd, std::memory_order_relaxed);
    } else {
      HostLog(HostLogLevel::kWarn, "cannot open STACKSTREAM_LOG_FILE=%s (%s); logging to stderr",
              file, strerror(errno));
    }
  }
}

bool HostLogEnabled(HostLogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed) &&
         level != HostLogLevel::kOff;
}

void HostLog(HostLogLevel level, const char* fmt, ...) {
  if (!HostLogEnabled(level)) return;
  va_list ap;
  va_start(ap, fmt);
  VLog(level, fmt, ap);
  va_end(ap);
}

void HostLogOnce(int key, HostLogLevel level, const char* fmt, ...) {
  if (!HostLogEnabled(level)) return;
  uint64_t bit = uint64_t{1} << (key & 63);
  if (g_once.fetch_or(bit, std::memory_order_relaxed) & bit) return;
  va_list ap;
  va_start(ap, fmt);
  VLog(level, fmt, ap);
  va_end(ap);
}

}  // namespace agent
}  // namespace stackstream
