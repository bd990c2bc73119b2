// The boundary, inside stackstream-agent, between a client session (which
// drains a host's rings and unwinds the copies) and the pipeline that turns
// raw stacks into portable summaries (symbolize, summary, transport,
// offline writer).
//
// A session owns one SampleSink and calls it from one thread, except
// Finish(), which may run on another thread after the last Flush().
#pragma once

#include <cstdint>
#include <string>

namespace stackstream {
namespace agent {

class ModuleSet;  // unwind/module_set.h

// What a RawSample counts.
enum class SampleKind : uint8_t {
  kClock,  // a cpu/wall clock sample: "weight" samples
  kAlloc,  // a sampled allocation: heap_objects / heap_bytes (weighted estimate)
  kInuse,  // a sampled allocation still live at this flush (gauge; replayed
           // by the session at every flush until it is freed)
};

// A thread label the sample carried (stackstream_set_thread_label), checked
// by the session (capture::IsValidRecordLabel).
struct SampleLabel {
  std::string key;
  std::string value;
};

// One raw stack as the handler captured it, unwound. Valid only during OnSample.
struct RawSample {
  SampleKind kind = SampleKind::kClock;
  int64_t heap_objects = 0;       // kAlloc / kInuse: estimated objects
  int64_t heap_bytes = 0;         // kAlloc / kInuse: estimated bytes
  const uint64_t* pcs = nullptr;  // LEAF FIRST: pcs[0] is the interrupted PC,
                                  // pcs[i>0] are return addresses
  uint32_t depth = 0;
  bool truncated = false;         // cut at max depth
  uint32_t weight = 1;            // 1 + timer overruns
  int32_t tid = 0;
  int64_t timestamp_ns = 0;       // CLOCK_REALTIME
  const ModuleSet* modules = nullptr;  // the host's modules when it was taken
  const SampleLabel* labels = nullptr;  // kClock: the thread's labels, keys unique
  uint32_t label_count = 0;
};

// Counters the capture side accumulates. Passed to Flush as the increase
// since the previous Flush.
struct SamplingCounters {
  int64_t samples_dropped_ring_full = 0;
  int64_t unwind_failures = 0;
  int64_t truncated_stacks = 0;
  int64_t timers_failed = 0;
  int64_t reentrant_signals = 0;
  int64_t agent_reconnects = 0;
  int64_t samples_lost_agent_restart = 0;
  int64_t messages_dropped = 0;
  int64_t modules_rejected = 0;   // module files the agent refused to read
  int64_t heap_samples_dropped_ring_full = 0;
  int64_t heap_samples_untracked_table_full = 0;
  int64_t heap_samples_dropped_no_thread = 0;
};

class SampleSink {
 public:
  virtual ~SampleSink() = default;
  // For every sample taken out of a ring.
  virtual void OnSample(const RawSample& sample) = 0;
  // Every STACKSTREAM_FLUSH_MS, on request, and once more at the end: close
  // the current window into a summary and hand it to the transport /
  // offline writer (the offline file is complete when this returns).
  // With heap profiling on, the session first replays the live sampled
  // allocations as kInuse samples, then calls Flush with heap = true (the
  // summary then carries the four heap sample types, inuse possibly empty).
  virtual void Flush(const SamplingCounters& delta) = 0;
  // After the last Flush: deliver what is pending, waiting until
  // "deadline_ns" (CLOCK_MONOTONIC) at most. Never blocks longer.
  virtual void Finish(int64_t deadline_ns) = 0;
};

}  // namespace agent
}  // namespace stackstream
