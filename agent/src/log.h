// stackstream-agent's logger: spdlog to stderr or a file at a level
// (STACKSTREAM_LOG / --log-level); never stdout.
//
// Thread-safety: all functions are thread-safe. AgentLog() is usable before
// InitAgentLog() (a stderr logger at "warn").
//
// Usage:
//   AgentLog()->warn("STACKSTREAM_HZ={} is not a number; using {}", v, 100);
//   LogRateLimited("send_failed", spdlog::level::warn, "send failed: {}", msg);
//   LogOnce("handler_replaced", spdlog::level::warn, "...");
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <utility>

namespace stackstream {
namespace agent {

struct Config;

// Sets level and destination from "config" (log_level, log_file). Call once
// at start (and again in a forked child after ResetAgentLogAfterFork()).
void InitAgentLog(const Config& config);

// The agent's logger; never null, never destroyed.
spdlog::logger* AgentLog();

// Rate limiting by "kind" (a short stable key). ShouldLog returns true when a
// message of this kind may be written now: the first time, and then at most
// once per "min_interval_ms". "*suppressed" (may be null) receives how many
// were suppressed since the last allowed one. "min_interval_ms" < 0 means
// once per process.
bool ShouldLog(const std::string& kind, int64_t min_interval_ms, int64_t* suppressed);

// At most one message per "kind" for the life of the process.
template <typename... Args>
void LogOnce(const std::string& kind, spdlog::level::level_enum level,
             spdlog::format_string_t<Args...> fmt, Args&&... args) {
  if (!AgentLog()->should_log(level)) return;
  if (!ShouldLog(kind, -1, nullptr)) return;
  AgentLog()->log(level, fmt, std::forward<Args>(args)...);
}

// At most one message per "kind" every 10 s; the next one says how many
// were suppressed in between.
template <typename... Args>
void LogRateLimited(const std::string& kind, spdlog::level::level_enum level,
                    spdlog::format_string_t<Args...> fmt, Args&&... args) {
  if (!AgentLog()->should_log(level)) return;
  int64_t suppressed = 0;
  if (!ShouldLog(kind, 10000, &suppressed)) return;
  AgentLog()->log(level, fmt, std::forward<Args>(args)...);
  if (suppressed > 0) {
    AgentLog()->log(level, "({} similar '{}' messages suppressed)", suppressed, kind);
  }
}

}  // namespace agent
}  // namespace stackstream
