// Label selectors in Prometheus form:
//   {service="api", env!="dev", host=~"web-.*", region!~"eu|us"}
// Values are quoted with "..." or '...' (escapes \\ \" \' \n \t \r) or
// `...` (raw). Regexes are fully anchored, as in Prometheus.
// Thread-safe (pure functions).
#pragma once

#include <string>
#include <vector>

#include "format/status.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

// Longest selector accepted (bytes).
inline constexpr size_t kMaxSelectorBytes = 8192;
// Longest regular expression accepted in a =~ / !~ matcher (bytes).
inline constexpr size_t kMaxRegexBytes = 1024;

// Parses "text" into "*out" (cleared first). "" and "{}" give no matchers.
// An optional metric-like prefix before '{' (Pyroscope's "app.cpu{...}") is
// returned in "*prefix" when "prefix" is not null, and rejected otherwise.
// Errors are InvalidArgument with a message that says what and where.
Status ParseSelector(const std::string& text, std::vector<LabelMatcher>* out,
                     std::string* prefix = nullptr);

// The selector text for "matchers" (the inverse of ParseSelector).
std::string FormatSelector(const std::vector<LabelMatcher>& matchers);

// Whether "name" is a valid label name: [A-Za-z_][A-Za-z0-9_.]*.
bool IsValidLabelName(const std::string& name);

}  // namespace collector
}  // namespace stackstream
