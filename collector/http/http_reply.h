// HttpReply: what a handler answers, independent of the HTTP library so
// handlers can be tested without sockets. Thread-compatible value type.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/status.h"

namespace stackstream {
namespace collector {

// Query parameters as the HTTP library gives them (a name may repeat; the
// handlers use the first value).
using QueryParams = std::multimap<std::string, std::string>;

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// {"error": "<message>"} with "status".
HttpReply ErrorReply(int status, const std::string& message);

// The HTTP status for a non-OK "status": InvalidArgument 400, NotFound 404,
// Unauthenticated 401, ResourceExhausted 413, Unavailable 503, others 500.
int HttpStatusFor(const Status& status);

// ErrorReply(HttpStatusFor(status), status.message()).
HttpReply StatusReply(const Status& status);

// An InvalidArgument naming the parameter: `invalid parameter "from": ...`.
Status ParamError(const std::string& param, const std::string& message);

}  // namespace collector
}  // namespace stackstream
