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
std::mutex* g_mu = new std::mutex;
LogSettings* g_settings = new LogSettings;
std::atomic<spdlog::logger*> g_logger{nullptr};

struct RateState {
  int64_t last_ms = 0;
  int64_t suppressed = 0;
};
std::mutex* g_rate_mu = new std::mutex;
std::map<std::string, RateState>* g_rate = new std::map<std::string, RateState>;

spdlog::level::level_enum ParseLevel(const std::string& s) {
  if (s == "off") return spdlog::level::off;
  if (s == "error") return spdlog::level::err;
  if (s == "info") return spdlog::level::info;
  if (s == "debug") return spdlog::level::debug;
  if (s == "trace") return spdlog::level::trace;
  return spdlog::level::warn;
}

// REQUIRES: g_mu held.
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
  std::lock_guard<std::mutex> lock(*g_mu);
  g_settings->level = config.log_level;
  g_settings->file = config.log_file;
  g_logger.store(MakeLogger(*g_settings), std::memory_order_release);  // old one leaked
}

spdlog::logger* AgentLog() {
  spdlog::logger* l = g_logger.load(std::memory_order_acquire);
  if (l != nullptr) return l;
  std::lock_guard<std::mutex> lock(*g_mu);
  l = g_logger.load(std::memory_order_acquire);
  if (l == nullptr) {
    l = MakeLogger(*g_settings);
    g_logger.store(l, std::memory_order_release);
  }
  return l;
}

void ResetAgentLogAfterFork() {
  // Another parent thread may have held any of these mutexes at fork time.
  g_mu = new std::mutex;
  g_rate_mu = new std::mutex;
  g_rate = new std::map<std::string, RateState>;
  std::lock_guard<std::mutex> lock(*g_mu);
  g_logger.store(MakeLogger(*g_settings), std::memory_order_release);
}

bool ShouldLog(const std::string& kind, int64_t min_interval_ms, int64_t* suppressed) {
  std::lock_guard<std::mutex> lock(*g_rate_mu);
  auto it = g_rate->find(kind);
  int64_t now = NowMs();
  if (it == g_rate->end()) {
    (*g_rate)[kind] = RateState{now, 0};
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
