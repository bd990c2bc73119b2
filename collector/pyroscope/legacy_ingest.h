// LegacyIngest: Pyroscope's legacy push endpoint, so agents that speak it
// can send to stackstream:
//   POST /ingest?name=app.cpu{env=prod,region=eu}&from=<unix s>&until=<unix s>
//                &format=folded&sampleRate=100
// with a body of folded lines ("a;b;c 12"). The data is stored through
// Store::Write as one summary whose agent_instance_id is synthesized
// ("pyroscope-ingest/<service>") and whose sequence is a hash of the
// request, so a resent identical upload is recognized as a duplicate.
// Only format=folded (alias "lines") is accepted; others get 415.
//
// Thread-safe: holds only the Store and Metrics pointers (both thread-safe).
#pragma once

#include <cstdint>
#include <string>

#include "http/http_reply.h"
#include "metrics.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

// Limits on one upload.
inline constexpr size_t kMaxIngestLines = 200000;
inline constexpr size_t kMaxIngestDepth = 1024;
inline constexpr size_t kMaxIngestLabels = 32;
inline constexpr size_t kMaxIngestLabelBytes = 1024;

class LegacyIngest {
 public:
  // "store" and "metrics" (may be null) must outlive this object.
  LegacyIngest(Store* store, Metrics* metrics) : store_(store), metrics_(metrics) {}

  HttpReply Handle(const QueryParams& params, const std::string& body, int64_t now_unix_nanos);

 private:
  Store* const store_;
  Metrics* const metrics_;
};

}  // namespace collector
}  // namespace stackstream
