#include "pyroscope/connect.h"

#include <google/protobuf/util/json_util.h>

#include <map>
#include <nlohmann/json.hpp>

namespace stackstream {
namespace collector {
namespace pyroscope {

void Fail(const std::string& code, const std::string& message) {
  throw ConnectFailure{code, message};
}

void FailIfError(const Status& s) {
  if (s.ok()) return;
  switch (s.code()) {
    case Status::kInvalidArgument:
      Fail("invalid_argument", s.message());
    case Status::kNotFound:
      Fail("not_found", s.message());
    case Status::kUnavailable:
      Fail("unavailable", s.message());
    case Status::kResourceExhausted:
      Fail("resource_exhausted", s.message());
    default:
      Fail("internal", s.message());
  }
}

HttpReply ConnectError(const std::string& code, const std::string& message) {
  static const std::map<std::string, int> kStatus = {
      {"invalid_argument", 400}, {"unauthenticated", 401}, {"not_found", 404},
      {"unimplemented", 501},    {"unavailable", 503},     {"resource_exhausted", 429},
      {"internal", 500}};
  auto it = kStatus.find(code);
  HttpReply reply;
  reply.status = it == kStatus.end() ? 500 : it->second;
  reply.content_type = "application/json";
  reply.body = nlohmann::json{{"code", code}, {"message", message}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return reply;
}

bool IsJsonContentType(const std::string& content_type) {
  std::string ct = content_type.substr(0, content_type.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  for (char& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ct == "application/proto" || ct == "application/x-protobuf" || ct == "application/protobuf") {
    return false;
  }
  if (ct == "application/json" || ct.empty()) return true;
  Fail("invalid_argument", "Content-Type must be application/proto or application/json, not \"" +
                               ct.substr(0, 100) + "\"");
}

void DecodeRequest(bool json, const std::string& body, google::protobuf::Message* message) {
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;  // also ignores unknown enum value names
    auto status = google::protobuf::util::JsonStringToMessage(
        body.find_first_not_of(" \t\r\n") == std::string::npos ? "{}" : body, message, options);
    if (!status.ok()) {
      Fail("invalid_argument",
           "cannot parse the JSON request body: " + std::string(status.message()).substr(0, 300));
    }
  } else if (!message->ParseFromString(body)) {
    Fail("invalid_argument", "cannot parse the protobuf request body");
  }
}

HttpReply EncodeResponse(bool json, const google::protobuf::Message& message) {
  HttpReply reply;
  if (json) {
    reply.content_type = "application/json";
    google::protobuf::util::JsonPrintOptions options;
    if (!google::protobuf::util::MessageToJsonString(message, &reply.body, options).ok()) {
      Fail("internal", "cannot encode the JSON response");
    }
  } else {
    reply.content_type = "application/proto";
    reply.body = message.SerializeAsString();
  }
  return reply;
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
