// Logging for the pipeline, through the agent's logger (log.h): never on
// stdout. PipelineLog() prints at most one line per "kind" per minute; the
// next line of that kind says how many were suppressed.
//
// Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "log.h"

namespace stackstream {
namespace agent {
namespace pipeline {

constexpr int64_t kLogIntervalMs = 60000;

template <typename... Args>
void PipelineLog(const std::string& kind, spdlog::level::level_enum level,
                 spdlog::format_string_t<Args...> fmt, Args&&... args) {
  if (!AgentLog()->should_log(level)) return;
  int64_t suppressed = 0;
  if (!ShouldLog("pipeline." + kind, kLogIntervalMs, &suppressed)) return;
  AgentLog()->log(level, fmt, std::forward<Args>(args)...);
  if (suppressed > 0) {
    AgentLog()->log(level, "({} similar '{}' messages suppressed)", suppressed, kind);
  }
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
