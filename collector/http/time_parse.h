// Times and durations as the HTTP API and the CLI accept them:
//   times:     unix seconds ("1700000000", "1700000000.25"), RFC 3339
//              ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5+02:00"),
//              "now", "now-15m", "now-1h30m", "now-7d", "now+5m";
//   durations: "90" (seconds), "500ms", "15s", "15m", "1h", "1h30m", "7d", "2w".
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>

#include "format/status.h"

namespace stackstream {
namespace collector {

// Parses "text" relative to "now_unix_nanos" into "*unix_nanos".
// InvalidArgument (message without the parameter name) on bad input.
Status ParseTime(const std::string& text, int64_t now_unix_nanos, int64_t* unix_nanos);

// Parses a duration into "*nanos" (> 0 is not required; "0s" is 0).
Status ParseDuration(const std::string& text, int64_t* nanos);

// RFC 3339 in UTC with nanoseconds trimmed ("2024-05-01T12:00:00Z",
// "2024-05-01T12:00:00.5Z").
std::string FormatRfc3339(int64_t unix_nanos);

// The current time in unix nanoseconds.
int64_t NowUnixNanos();

}  // namespace collector
}  // namespace stackstream
