// ApiClient: GET requests to the collector's HTTP API for the CLI, with
// clear errors when the server is unreachable or answers with an error.
// Not thread-safe; one per command.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace stackstream {
namespace cli {

using Params = std::vector<std::pair<std::string, std::string>>;

struct ApiResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(const std::string& name) const;  // case-insensitive; "" if absent
};

// Percent-encodes "value" for a query string (RFC 3986 unreserved kept).
std::string UrlEncode(const std::string& value);

class ApiClient {
 public:
  // "server": "http://host:port", "https://host:port[/prefix]" or "host:port".
  // "token" (may be empty) is sent as a bearer token; $STACKSTREAM_TLS_CA,
  // when set, is the CA file for https.
  ApiClient(std::string server, std::string token);

  // GETs "path" with "params". True on HTTP 200. Otherwise false with
  // "*error" saying why: unreachable server, or the server's error message.
  bool Get(const std::string& path, const Params& params, ApiResponse* out, std::string* error);

  const std::string& server() const { return server_; }

 private:
  std::string server_;
  std::string token_;
};

}  // namespace cli
}  // namespace stackstream
