#include "log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>

#include "config.h"

namespace stackstream {
namespace agent {
namespace {

struct LogSettings {
  std::string level = "warn";
  std::string file;
};

// All leaked on purpose: the logger must outlive every thread, including ones
// still running while the process exits.
// Function-local statics: the agent's constructor may log before this
// file's dynamic initializers would have run.
std::mutex*& MuPtr() {
  static std::mutex* mu = new std::mutex;
  return mu;
}
LogSettings& Settings() {
  static LogSettings* s = new LogSettings;
  return *s;
}
std::atomic<spdlog::logger*> g_logger{nullptr};  // constant-initialized

struct RateState {
  int64_t last_ms = 0;
  int64_t suppressed = 0;
};
std::mutex*& RateMuPtr() {
  static std::mutex* mu = new std::mutex;
  return mu;
}
std::map<std::string, RateState>*& RatePtr() {
  static auto* m = new std::map<std::string, RateState>;
  return m;
}

spdlog::level::level_enum ParseLevel(const std::string& s) {
  if (s == "off") return spdlog::level::off;
  if (s == "error") return spdlog::level::err;
  if (s == "info") return spdlog::level::info;
  if (s == "debug") return spdlog::level::debug;
  if (s == "trace") return spdlog::level::trace;
  return spdlog::level::warn;
}

// REQUIRES: *MuPtr() held.
spdlog::logger* MakeLogger(const LogSettings& s) {
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = ParseLevel(s.level);
  if (level == spdlog::level::off) {
    sink = std::make_shared<spdlog::sinks::null_sink_mt>();
  } else if (!s.file.empty()) {
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(s.file, /*truncate=*/false);
    } catch (const std::exception&) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    }
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  // Not registered in spdlog's global registry: the host may use spdlog too.
  auto* logger = new spdlog::logger("stackstream", std::move(sink));
  logger->set_level(level);
  logger->set_pattern("[stackstream %P] [%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  logger->flush_on(spdlog::level::trace);
  return logger;
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

}  // namespace

void InitAgentLog(const Config& config) {
  std::lock_guard<std::mutex> lock(*MuPtr());
  Settings().level = config.log_level;
  Settings().file = config.log_file;
  g_logger.store(MakeLogger(Settings()), std::memory_order_release);  // old one leaked
}

spdlog::logger* AgentLog() {
  spdlog::logger* l = g_logger.load(std::memory_order_acquire);
  if (l != nullptr) return l;
  std::lock_guard<std::mutex> lock(*MuPtr());
  l = g_logger.load(std::memory_order_acquire);
  if (l == nullptr) {
    l = MakeLogger(Settings());
    g_logger.store(l, std::memory_order_release);
  }
  return l;
}

bool ShouldLog(const std::string& kind, int64_t min_interval_ms, int64_t* suppressed) {
  std::lock_guard<std::mutex> lock(*RateMuPtr());
  std::map<std::string, RateState>& rate = *RatePtr();
  auto it = rate.find(kind);
  int64_t now = NowMs();
  if (it == rate.end()) {
    rate[kind] = RateState{now, 0};
    if (suppressed != nullptr) *suppressed = 0;
    return true;
  }
  RateState& st = it->second;
  if (min_interval_ms < 0 || now - st.last_ms < min_interval_ms) {
    ++st.suppressed;
    return false;
  }
  if (suppressed != nullptr) *suppressed = st.suppressed;
  st.suppressed = 0;
  st.last_ms = now;
  return true;
}

}  // namespace agent
}  // namespace stackstream
