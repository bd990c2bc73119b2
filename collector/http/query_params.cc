#include "http/query_params.h"

#include <cerrno>
#include <cstdlib>

#include "http/selector.h"
#include "format/profile.h"
#include "http/time_parse.h"

namespace stackstream {
namespace collector {

bool GetParam(const QueryParams& params, const std::string& name, std::string* value) {
  auto it = params.find(name);
  if (it == params.end()) {
    value->clear();
    return false;
  }
  *value = it->second;
  return true;
}

Status ParseIntParam(const QueryParams& params, const std::string& name, int64_t min,
                     int64_t max, int64_t* value) {
  std::string text;
  if (!GetParam(params, name, &text)) return Status::OK();
  if (text.empty() || text.size() > 19) {
    return ParamError(name, "want an integer in [" + std::to_string(min) + ", " +
                                std::to_string(max) + "]");
  }
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0' || v < min || v > max) {
    return ParamError(name, "\"" + text + "\" is not an integer in [" + std::to_string(min) +
                                ", " + std::to_string(max) + "]");
  }
  *value = v;
  return Status::OK();
}

Status ParseProfileQuery(const QueryParams& params, int64_t now_unix_nanos,
                         const QueryParamNames& names, ProfileQuery* query) {
  *query = ProfileQuery();
  std::string text;

  if (GetParam(params, names.selector, &text)) {
    Status s = ParseSelector(text, &query->matchers);
    if (!s.ok()) return ParamError(names.selector, s.message());
  }
  GetParam(params, "service", &query->service);
  if (query->service.size() > 1024) return ParamError("service", "longer than 1024 bytes");
  if (query->service.empty()) {
    for (const LabelMatcher& m : query->matchers) {
      if (m.name == "service" && m.op == LabelMatcher::kEq) {
        query->service = m.value;
        break;
      }
    }
  }
  if (query->service.empty()) {
    return ParamError("service", "missing (give service=NAME or a selector with service=\"NAME\")");
  }

  int64_t to = now_unix_nanos;
  if (GetParam(params, names.to, &text)) {
    Status s = ParseTime(text, now_unix_nanos, &to);
    if (!s.ok()) return ParamError(names.to, s.message());
  }
  int64_t from = to - kDefaultRangeNanos;
  if (GetParam(params, names.from, &text)) {
    Status s = ParseTime(text, now_unix_nanos, &from);
    if (!s.ok()) return ParamError(names.from, s.message());
  } else if (GetParam(params, "seconds", &text) && names.from == "from") {
    int64_t seconds = 0;
    Status s = ParseIntParam(params, "seconds", 1, 10LL * 365 * 86400, &seconds);
    if (!s.ok()) return s;
    from = to - seconds * 1000000000LL;
  }
  if (from >= to) {
    return ParamError(names.from, "must be before \"" + names.to + "\" (" + FormatRfc3339(from) +
                                      " >= " + FormatRfc3339(to) + ")");
  }
  query->from_unix_nanos = from;
  query->to_unix_nanos = to;

  // type= is the profile type; mode= its older name (still accepted).
  for (const char* name : {"mode", "type"}) {
    if (!GetParam(params, name, &text) || text.empty()) continue;
    if (text != "cpu" && text != "wall" && text != "heap" && !IsHeapSampleType(text)) {
      return ParamError(name, "want cpu, wall, alloc_objects, alloc_space, inuse_objects, "
                              "inuse_space (or heap: the four, pprof only)");
    }
    query->mode = text;
  }
  return Status::OK();
}

}  // namespace collector
}  // namespace stackstream
