// Sender: delivers one host process's summaries to the collector(s) over the
// gRPC bidi stream IngestService.Stream, on a thread of its own, so that
// stackstream-agent's session loop never waits on the network.
//
// - Sequence numbers per agent instance, from 1. Every summary stays in a
//   bounded Spool until the collector acknowledges it; after a reconnect all
//   unacknowledged summaries are sent again (the collector is idempotent on
//   (agent_instance_id, sequence)).
// - Several collectors: each agent starts at one picked by its instance id
//   (spreading agents over them) and moves to the next on error.
// - Errors: exponential backoff with jitter (100 ms .. 30 s). A summary the
//   collector rejects (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) is dropped and
//   counted. Logs at most one line per kind of problem per minute.
// - gzip message compression; "authorization: Bearer TOKEN" when a token is
//   set; TLS with the given CA file, else an insecure channel.
// - Nothing touches gRPC before the first summary is enqueued: the thread and
//   the channel are created lazily, on the sender thread.
// - One stream per batch: it ends (WritesDone/Finish) once every summary
//   sent on it is acknowledged; the channel is kept.
//
// Thread-safety: Enqueue, TakeDropCounters, stats are thread-safe. Shutdown
// is called once, by the thread that owns the Sender.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace agent {
namespace pipeline {

struct SenderStats {
  int64_t enqueued = 0;          // summaries given to Enqueue
  int64_t acked = 0;             // acknowledged by a collector
  int64_t duplicates = 0;        // acknowledged as already stored
  int64_t rejected = 0;          // dropped: INVALID_ARGUMENT / RESOURCE_EXHAUSTED
  int64_t dropped_spool_full = 0;
  int64_t sessions = 0;          // streams opened
  int64_t failed_sessions = 0;   // streams that ended with an error
  int64_t writes = 0;            // summaries written to a stream (resends included)
  int64_t spooled = 0;           // summaries waiting for an ack now
};

class Sender {
 public:
  struct Options {
    std::vector<std::string> collectors;
    bool quiet = false;            // default address, not configured: log at debug only
    std::string token;
    std::string tls_ca_path;       // PEM; empty: insecure
    int64_t spool_bytes = 4 << 20;
    std::string agent_instance_id;
    int64_t backoff_initial_ms = 100;
    int64_t backoff_max_ms = 30000;
    int64_t ack_timeout_ms = 30000;  // no ack for this long: reconnect
  };

  static Options OptionsFromConfig(const Config& config);
  static std::unique_ptr<Sender> Create(const Options& options);

  virtual ~Sender() = default;

  // Assigns the next sequence number and queues "summary" ("samples" is its
  // sample count, for the drop counters). Never blocks on the network.
  virtual void Enqueue(v1::StackSummary summary, int64_t samples) = 0;

  // Adds the spool drops since the last call to "counters" (to be sent in
  // the next summary).
  virtual void TakeDropCounters(v1::Counters* counters) = 0;

  // Delivers what is pending until "deadline_ns" (CLOCK_MONOTONIC) at the
  // latest, then cancels the stream and stops the thread. Returns by the
  // deadline (plus a few ms).
  virtual void Shutdown(int64_t deadline_ns) = 0;

  virtual SenderStats stats() const = 0;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
