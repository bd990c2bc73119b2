// Fuzz target: the time and duration parsers of the HTTP API and the CLI.
// Invariant: a parsed time, formatted as RFC 3339, parses back to itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "http/time_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const int64_t now = 1700000000LL * 1000000000LL;
  int64_t t = 0, d = 0;
  stackstream::Status s = stackstream::collector::ParseTime(text, now, &t);
  if (s.ok()) {
    const std::string rfc = stackstream::collector::FormatRfc3339(t);
    int64_t back = 0;
    s = stackstream::collector::ParseTime(rfc, now, &back);
    FUZZ_CHECK(s.ok() && back == t, "%s -> %lld -> %s -> %lld (%s)", text.c_str(),
               static_cast<long long>(t), rfc.c_str(), static_cast<long long>(back),
               s.ToString().c_str());
  } else {
    FUZZ_CHECK(!s.message().empty(), "a rejection without a message");
  }
  stackstream::collector::ParseDuration(text, &d);
  return 0;
}
