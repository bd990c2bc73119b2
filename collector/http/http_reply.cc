#include "http/http_reply.h"

#include <nlohmann/json.hpp>

namespace stackstream {
namespace collector {

HttpReply ErrorReply(int status, const std::string& message) {
  HttpReply reply;
  reply.status = status;
  reply.content_type = "application/json";
  reply.body = nlohmann::json{{"error", message}}.dump(
                   -1, ' ', false, nlohmann::json::error_handler_t::replace) +
               "\n";
  return reply;
}

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case Status::kOk: return 200;
    case Status::kInvalidArgument: return 400;
    case Status::kNotFound: return 404;
    case Status::kUnauthenticated: return 401;
    case Status::kResourceExhausted: return 413;
    case Status::kUnavailable: return 503;
    default: return 500;
  }
}

HttpReply StatusReply(const Status& status) {
  return ErrorReply(HttpStatusFor(status), status.message());
}

Status ParamError(const std::string& param, const std::string& message) {
  return Status::InvalidArgument("invalid parameter \"" + param + "\": " + message);
}

}  // namespace collector
}  // namespace stackstream
