// Fuzz target: the Pyroscope/Grafana Connect API (collector/pyroscope):
// every served querier.v1 method and settings.v1 Get, binary proto and JSON,
// and /pyroscope/render and render-diff (query strings), against a real
// SQLite store holding one small profile. Input: byte 0 picks the method,
// byte 1 the encoding, the rest is the request body (or query string).
// Invariants: no crash; the answer is 200 or an error that says what (4xx
// with a Connect code, or {"error": ...}), never a 5xx for what a client sent.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.h"
#include "pyroscope/querier_service.h"
#include "pyroscope/render.h"
#include "query_string.h"
#include "storage/store.h"

namespace {

const char* const kMethods[] = {"ProfileTypes", "LabelNames", "LabelValues", "Series",
                                "SelectMergeStacktraces", "SelectMergeSpanProfile",
                                "SelectMergeProfile", "SelectSeries", "Diff",
                                "GetProfileStats", "settings.Get", "render", "render-diff"};

stackstream::collector::Store* GetStore() {
  static stackstream::collector::Store* store = [] {
    char dir[] = "/tmp/ss-fuzz-connect-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != nullptr, "mkdtemp");
    std::unique_ptr<stackstream::collector::Store> s;
    stackstream::Status st = stackstream::collector::OpenStore(
        "sqlite:" + std::string(dir) + "/profiles.db", &s);
    FUZZ_CHECK(st.ok(), "open store: %s", st.ToString().c_str());
    // One profile at 1700000000 s: main -> work -> {hot_a 70, hot_b 30}.
    stackstream::ProfileBuilder b;
    stackstream::Profile* p = b.mutable_profile();
    p->start_unix_nanos = 1700000000LL * 1000000000LL;
    p->end_unix_nanos = p->start_unix_nanos + 10LL * 1000000000LL;
    auto frame = [&](const char* name) {
      stackstream::Frame f;
      f.function = name;
      f.module = "/usr/bin/fuzz";
      return b.InternFrame(f);
    };
    uint32_t main_f = frame("main"), work = frame("work"), a = frame("hot_a"), c = frame("hot_b");
    b.AddSample({a, work, main_f}, 70);
    b.AddSample({c, work, main_f}, 30);
    stackstream::collector::SummaryRecord r;
    r.agent_instance_id = "fuzz";
    r.sequence = 1;
    r.service = "fuzz";
    r.labels = {{"service", "fuzz"}, {"host", "h"}, {"env", "prod"}};
    r.profile = b.Release();
    bool dup = false;
    st = s->Write(r, &dup);
    FUZZ_CHECK(st.ok(), "write: %s", st.ToString().c_str());
    return s.release();
  }();
  return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string method = kMethods[data[0] % (sizeof kMethods / sizeof kMethods[0])];
  const bool json = data[1] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string type = json ? "application/json" : "application/proto";
  stackstream::collector::pyroscope::QuerierService service(GetStore());
  const int64_t now = 1700000100LL * 1000000000LL;
  stackstream::collector::HttpReply reply;
  if (method == "settings.Get") {
    reply = service.HandleSettings("Get", type, body);
  } else if (method == "render" || method == "render-diff") {
    stackstream::collector::pyroscope::RenderApi render(GetStore());
    const auto params = stackstream::fuzz::SplitQuery(body);
    reply = method == "render" ? render.Render(params, now) : render.RenderDiff(params, now);
  } else {
    reply = service.Handle(method, type, body, now);
  }
  FUZZ_CHECK(reply.status == 200 || (reply.status >= 400 && reply.status < 500 &&
                                     (reply.body.find("\"code\"") != std::string::npos ||
                                      reply.body.find("\"error\"") != std::string::npos)),
             "%s (%s): status %d: %.300s", method.c_str(), type.c_str(), reply.status,
             reply.body.c_str());
  return 0;
}
