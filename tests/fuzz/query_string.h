// SplitQuery: "a=1&b=2" as the HTTP server's QueryParams, for the fuzz
// targets of endpoints that take query parameters (no URL decoding: the
// bytes reach the handler as they are).
#pragma once

#include <string>

#include "http/http_reply.h"

namespace stackstream {
namespace fuzz {

inline collector::QueryParams SplitQuery(const std::string& query) {
  collector::QueryParams params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    const std::string kv = query.substr(pos, amp - pos);
    const size_t eq = kv.find('=');
    if (!kv.empty()) {
      params.emplace(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
    pos = amp + 1;
  }
  return params;
}

}  // namespace fuzz
}  // namespace stackstream
