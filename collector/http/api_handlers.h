// ApiHandlers: the /api/v1 endpoints (services, profile, top, counters, diff,
// series) as functions from query parameters to an HttpReply, over a Store.
// They never throw for bad input (errors come back as 4xx replies naming the
// parameter). Thread-safe: holds only the Store pointer, and Store is
// thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "http/http_reply.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

class ApiHandlers {
 public:
  // "store" must outlive this object.
  explicit ApiHandlers(Store* store) : store_(store) {}

  // GET /api/v1/services: [{"service", "label_sets", "first_seen", "last_seen",
  // "first_seen_unix_nanos", "last_seen_unix_nanos"}].
  HttpReply Services(const QueryParams& params);
  // GET /api/v1/profile?service&from&to&selector&mode&format=pprof|folded|speedscope|flamegraph
  //     [&max_nodes=N] (not with pprof): the N largest call-tree nodes, the
  //     rest merged into "other" (export/max_nodes.h).
  HttpReply Profile(const QueryParams& params, int64_t now_unix_nanos);
  // Both also answer X-Stackstream-Dropped-Samples: samples the agents lost
  // in the range (ring full + spool full + stacks over the summary limit);
  // a pprof profile carries each non-zero drop counter as a comment.
  // GET /api/v1/top?...&limit=N: [{"function","module","file","line","self","total",
  // "self_pct","total_pct"}]
  HttpReply Top(const QueryParams& params, int64_t now_unix_nanos);
  // GET /api/v1/counters?service&from&to&selector&mode: the agents' drop
  // counters summed over the range, {"samples_dropped_ring_full": N, ...,
  // "samples": total samples stored in the range}. Every counter of
  // stackstream.v1.Counters is present (0 when nothing was lost).
  HttpReply Counters(const QueryParams& params, int64_t now_unix_nanos);
  // GET /api/v1/diff?...&base_from&base_to&base_selector&limit=N
  HttpReply Diff(const QueryParams& params, int64_t now_unix_nanos);
  // GET /api/v1/series?...&function=F&step=D
  HttpReply Series(const QueryParams& params, int64_t now_unix_nanos);

 private:
  // The merged profile of "query" and what the agents lost in its range.
  // type=heap&format=pprof: the four heap types in one pprof.
  HttpReply HeapPprof(const ProfileQuery& query);
  Status ReadProfile(const ProfileQuery& query, stackstream::Profile* profile,
                     std::map<std::string, int64_t>* counters);

  Store* const store_;
};

}  // namespace collector
}  // namespace stackstream
