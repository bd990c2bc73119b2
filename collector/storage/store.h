// Store: the storage interface the collector codes against. Engines:
// SqliteStore (embedded default, "sqlite:PATH") and ClickHouseStore
// ("clickhouse://HOST:PORT/DATABASE", many collectors on one database); both
// pass tests/collector/store_conformance.
//
// Implementations are thread-safe: ingest writes and HTTP queries run
// concurrently from many threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/profile.h"
#include "format/status.h"

namespace stackstream {
namespace collector {

using Labels = std::map<std::string, std::string>;  // includes "service"

// One validated summary, converted to domain types by the ingest service.
struct SummaryRecord {
  std::string agent_instance_id;
  uint64_t sequence = 0;
  std::string service;
  Labels labels;               // includes service, host and static labels
  int64_t pid = 0;             // the process (a process label, process_labels.h); 0: unknown
  Profile profile;             // window in profile.start/end_unix_nanos
  std::map<std::string, int64_t> counters;  // drop counters by name
};

struct LabelMatcher {
  enum Op { kEq, kNotEq, kRegex, kNotRegex };
  std::string name;
  Op op = kEq;
  std::string value;
};

struct ProfileQuery {
  std::string service;
  std::vector<LabelMatcher> matchers;  // all must hold
  int64_t from_unix_nanos = 0;         // inclusive
  int64_t to_unix_nanos = 0;           // exclusive
  // "cpu", "wall", a heap sample type (format/profile.h), or empty for any
  // clock mode (heap types are only read when asked for by name). alloc_*
  // types are counters, summed over the range like cpu. In-use types are
  // gauges: each summary holds a process's whole snapshot of live sampled
  // allocations (an empty one, "nothing live", is stored too), and a query
  // merges each process's (series and pid's) latest snapshot in the range: latest
  // by window bucket, over the committed, first write of each summary
  // (within one 10 s bucket SQLite takes the one stored last, ClickHouse the
  // later window start, then sequence: the same as long as one process's
  // summaries arrive in order, as its agent sends them). Heap
  // types are amounts: their profiles have period 1, and heap records leave
  // the period of the clock modes' profiles alone.
  std::string mode;
};

struct ServiceInfo {
  std::string service;
  std::vector<Labels> label_sets;
  int64_t first_seen_unix_nanos = 0;
  int64_t last_seen_unix_nanos = 0;
};

struct SeriesPoint {
  int64_t unix_nanos = 0;  // bucket start
  int64_t total = 0;       // samples in the bucket
  int64_t matched = 0;     // samples whose stack contains the function (if asked)
};

class Store {
 public:
  virtual ~Store() = default;

  // Durably stores "record" before returning OK. If (agent_instance_id,
  // sequence) was stored before, stores nothing and sets "*duplicate".
  virtual Status Write(const SummaryRecord& record, bool* duplicate) = 0;

  virtual Status ListServices(std::vector<ServiceInfo>* out) = 0;

  // Distinct label names / values seen for series matching "query"
  // (service may be empty for all services).
  virtual Status LabelNames(const ProfileQuery& query, std::vector<std::string>* out) = 0;
  virtual Status LabelValues(const ProfileQuery& query, const std::string& name,
                             std::vector<std::string>* out) = 0;

  // The merged profile of every stored sample that matches "query".
  virtual Status Query(const ProfileQuery& query, Profile* out) = 0;

  // Totals per "step_nanos" bucket over the query range. When "function" is
  // not empty, "matched" counts samples whose stack contains a frame with
  // that function name. Buckets with no data are omitted. For an in-use
  // type, each series' latest snapshot within each step counts; a step whose
  // latest snapshots are all empty is a point of 0 (nothing live).
  virtual Status Series(const ProfileQuery& query, int64_t step_nanos,
                        const std::string& function, std::vector<SeriesPoint>* out) = 0;

  // Totals of the agents' drop counters (SummaryRecord::counters, e.g.
  // "samples_dropped_ring_full") over the summaries that "query" selects,
  // with the same service, selector, time range and mode semantics as
  // Query(). A duplicate summary is not counted twice. Counters that sum to
  // zero may be absent from "*out". Losses are data: this is how a user sees
  // that a profile is missing samples.
  //
  // Not pure virtual so that test doubles need not implement it; every real
  // engine must (the conformance suite checks it).
  virtual Status Counters(const ProfileQuery& query, std::map<std::string, int64_t>* out) {
    out->clear();
    return Status::Internal("this storage engine does not keep drop counters");
  }

  // Deletes every sample (and every counter) older than "cutoff_unix_nanos".
  virtual Status DeleteBefore(int64_t cutoff_unix_nanos) = 0;

  // Bytes used on disk (0 when unknown).
  virtual int64_t SizeBytes() = 0;

  // OK when the storage can take writes and answer queries now (an engine
  // behind a network checks its server); /healthz reports it.
  virtual Status Health() { return Status::OK(); }
};

// Opens a store from a --storage URI ("sqlite:PATH" or
// "clickhouse://HOST:PORT/DATABASE"). Creates what is missing.
Status OpenStore(const std::string& uri, std::unique_ptr<Store>* out);

}  // namespace collector
}  // namespace stackstream
