// Fuzz target: Pyroscope's legacy POST /ingest (folded body), without the
// network. Input: the query string on the first line, the body after it.
// Invariants: every answer is 200 or a 4xx with a message; an accepted
// upload sent again is accepted again (stored once: it is a duplicate).
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.h"
#include "pyroscope/legacy_ingest.h"
#include "query_string.h"
#include "storage/store.h"

namespace {

stackstream::collector::Store* GetStore() {
  static stackstream::collector::Store* store = [] {
    char dir[] = "/tmp/ss-fuzz-folded-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != nullptr, "mkdtemp");
    std::unique_ptr<stackstream::collector::Store> s;
    stackstream::Status st = stackstream::collector::OpenStore(
        "sqlite:" + std::string(dir) + "/profiles.db", &s);
    FUZZ_CHECK(st.ok(), "open store: %s", st.ToString().c_str());
    return s.release();
  }();
  return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string query = input.substr(0, nl);
  const std::string body = nl == std::string::npos ? std::string() : input.substr(nl + 1);
  const stackstream::collector::QueryParams params = stackstream::fuzz::SplitQuery(query);
  stackstream::collector::LegacyIngest ingest(GetStore(), nullptr);
  const int64_t now = 1700000000LL * 1000000000LL;
  stackstream::collector::HttpReply reply = ingest.Handle(params, body, now);
  FUZZ_CHECK(reply.status == 200 || (reply.status >= 400 && reply.status < 500 &&
                                     !reply.body.empty()),
             "status %d body %s", reply.status, reply.body.c_str());
  if (reply.status == 200) {
    stackstream::collector::HttpReply again = ingest.Handle(params, body, now);
    FUZZ_CHECK(again.status == 200, "a re-sent accepted upload got %d", again.status);
  }
  return 0;
}
