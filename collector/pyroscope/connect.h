// The Connect protocol's unary encoding as Grafana's Pyroscope data source
// (binary proto) and Profiles Drilldown (JSON) use it: request decoding,
// response encoding and Connect errors.
//
// JSON is decoded tolerantly, like connect-go's protojson with
// DiscardUnknown: both field-name styles ("profile_typeID" and
// "profileTypeID", "max_nodes" and "maxNodes"), enums by name or number,
// 64-bit integers as numbers or strings, unknown fields ignored.
// Thread-safe (pure functions).
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "format/status.h"
#include "http/http_reply.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

// Thrown by the handlers in this folder; turned into a Connect error reply
// at their boundary (never escapes the folder).
struct ConnectFailure {
  std::string code;  // Connect code, e.g. "invalid_argument"
  std::string message;
};

[[noreturn]] void Fail(const std::string& code, const std::string& message);
// Fails with the Connect code for a non-OK "status".
void FailIfError(const Status& status);

// A Connect error reply: HTTP status from "code" (invalid_argument 400,
// unauthenticated 401, not_found 404, resource_exhausted 429,
// unimplemented 501, unavailable 503, internal 500) and a JSON body
// {"code", "message"}.
HttpReply ConnectError(const std::string& code, const std::string& message);

// Whether "content_type" asks for JSON (true) or binary proto (false);
// fails with invalid_argument for anything else.
bool IsJsonContentType(const std::string& content_type);

// Decodes "body" into "message" (JSON or binary); fails with invalid_argument.
void DecodeRequest(bool json, const std::string& body, google::protobuf::Message* message);

// "message" as a 200 reply: application/json or application/proto.
HttpReply EncodeResponse(bool json, const google::protobuf::Message& message);

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
