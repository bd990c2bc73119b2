#include "cli/api_client.h"

#include <httplib.h>
#include <strings.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

namespace stackstream {
namespace cli {

std::string ApiResponse::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  }
  return "";
}

std::string UrlEncode(const std::string& value) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

ApiClient::ApiClient(std::string server, std::string token)
    : server_(std::move(server)), token_(std::move(token)) {
  while (!server_.empty() && server_.back() == '/') server_.pop_back();
  if (server_.find("://") == std::string::npos) server_ = "http://" + server_;
}

bool ApiClient::Get(const std::string& path, const Params& params, ApiResponse* out,
                    std::string* error) {
  // Split "scheme://host:port/prefix".
  const size_t scheme_end = server_.find("://");
  const size_t path_start = server_.find('/', scheme_end + 3);
  const std::string origin = server_.substr(0, path_start);
  const std::string prefix = path_start == std::string::npos ? "" : server_.substr(path_start);
  const std::string scheme = server_.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    *error = "server URL \"" + server_ + "\" must start with http:// or https://";
    return false;
  }

  std::string target = prefix + path;
  char sep = '?';
  for (const auto& [k, v] : params) {
    target += sep;
    target += UrlEncode(k) + "=" + UrlEncode(v);
    sep = '&';
  }

  httplib::Client client(origin);
  if (!client.is_valid()) {
    *error = "invalid server URL \"" + server_ + "\"";
    return false;
  }
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(120, 0);
  client.set_write_timeout(30, 0);
  if (!token_.empty()) client.set_bearer_token_auth(token_);
  if (const char* ca = std::getenv("STACKSTREAM_TLS_CA"); ca != nullptr && *ca != '\0') {
    client.set_ca_cert_path(ca);
  }
  httplib::Result result = client.Get(target);
  if (!result) {
    std::string why;
    switch (result.error()) {
      case httplib::Error::Connection: why = "connection failed (is the collector running?)"; break;
      case httplib::Error::ConnectionTimeout: why = "connection timed out"; break;
      case httplib::Error::Read: why = "read error or timeout"; break;
      case httplib::Error::SSLConnection: why = "TLS connection failed"; break;
      case httplib::Error::SSLServerVerification: why = "TLS server verification failed"; break;
      default: why = httplib::to_string(result.error());
    }
    *error = "cannot reach " + server_ + ": " + why;
    return false;
  }
  out->status = result->status;
  out->body = result->body;
  out->headers.assign(result->headers.begin(), result->headers.end());
  if (result->status == 200) return true;
  std::string message;
  try {
    auto j = nlohmann::json::parse(result->body);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      message = j["error"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  if (message.empty()) message = result->body.substr(0, 200);
  *error = "server " + server_ + " answered HTTP " + std::to_string(result->status) +
           (message.empty() ? "" : ": " + message);
  return false;
}

}  // namespace cli
}  // namespace stackstream
