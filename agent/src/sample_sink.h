// The boundary between sampling (signal handler, rings, drain thread) and the
// pipeline that turns raw stacks into portable summaries (symbolize, summary,
// transport, offline writer).
//
// The drain thread owns a SampleSink and calls it, and only it; a SampleSink
// is used by that one thread (no locking needed inside), except
// Shutdown(), which may be called from the exiting thread after the drain
// thread has stopped.
#pragma once

#include <cstdint>

namespace stackstream {
namespace agent {

// One raw stack as the handler captured it. Valid only during OnSample.
struct RawSample {
  const uint64_t* pcs = nullptr;  // LEAF FIRST: pcs[0] is the interrupted PC,
                                  // pcs[i>0] are return addresses
  uint32_t depth = 0;
  bool truncated = false;         // cut at max depth
  uint32_t weight = 1;            // 1 + timer overruns
  int32_t tid = 0;
  int64_t timestamp_ns = 0;       // CLOCK_REALTIME
};

// Counters the sampling side accumulates. Passed to Flush as the increase
// since the previous Flush.
struct SamplingCounters {
  int64_t samples_dropped_ring_full = 0;
  int64_t unwind_failures = 0;
  int64_t truncated_stacks = 0;
  int64_t timers_failed = 0;
  int64_t reentrant_signals = 0;
};

class SampleSink {
 public:
  virtual ~SampleSink() = default;
  // Called on the drain thread for every sample taken out of a ring.
  virtual void OnSample(const RawSample& sample) = 0;
  // Called on the drain thread every STACKSTREAM_FLUSH_MS: close the current
  // window into a summary and hand it to the transport / offline writer.
  virtual void Flush(const SamplingCounters& delta) = 0;
  // Final flush at process exit: like Flush, then deliver what is pending,
  // waiting until "deadline_ns" (CLOCK_MONOTONIC) at most. Never blocks longer.
  virtual void Shutdown(const SamplingCounters& delta, int64_t deadline_ns) = 0;
};

}  // namespace agent
}  // namespace stackstream
