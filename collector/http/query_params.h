// Parsing of the query parameters the /api/v1 endpoints share:
//   service=S  selector={k="v",...}  from=T  to=T  limit=N
//   type=cpu|wall|alloc_objects|alloc_space|inuse_objects|inuse_space|heap
//   (mode= is the same parameter's older name)
// Errors name the parameter. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>

#include "format/status.h"
#include "http/http_reply.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

// Default range when "from" is absent: the last hour.
inline constexpr int64_t kDefaultRangeNanos = 3600LL * 1000000000;

// The first value of "name", or "" (and false) when absent.
bool GetParam(const QueryParams& params, const std::string& name, std::string* value);

// Builds a ProfileQuery from service/selector/from/to/mode, using the given
// parameter names for the range and selector (the diff endpoint has a second
// set: base_from/base_to/base_selector). "service" may come from the
// selector's service="..." matcher instead of the parameter. A "seconds=N"
// parameter (as `go tool pprof -seconds` adds) sets from = to - N when "from"
// is absent.
struct QueryParamNames {
  std::string from = "from";
  std::string to = "to";
  std::string selector = "selector";
};
Status ParseProfileQuery(const QueryParams& params, int64_t now_unix_nanos,
                         const QueryParamNames& names, ProfileQuery* query);

// An integer parameter in [min, max]; "*value" keeps its default when absent.
Status ParseIntParam(const QueryParams& params, const std::string& name, int64_t min,
                     int64_t max, int64_t* value);

}  // namespace collector
}  // namespace stackstream
