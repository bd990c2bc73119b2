// AttachSession: stackstream-agent profiling a process that is already
// running, from outside, without stopping, modifying or injecting into it
// (`stackstream attach`). It is the perf_event counterpart of ClientSession:
// instead of rings a preloaded host fills, it reads one PerfThreadEvent per
// thread of the target (found in /proc/PID/task at start, on
// PERF_RECORD_FORK and by a rescan every 100 ms; threads that exit before
// their event opens are skipped), keeps the target's modules from
// /proc/PID/maps (ProcessMaps: re-read on an executable PERF_RECORD_MMAP2
// and when a sample lands outside every known module), unwinds each sample
// (RemoteUnwinder over the stack copy and the module files) and feeds the
// same pipeline a preloaded host's samples go through (CreatePipeline:
// symbolizer, summary builder, sender / offline writer), closing a window
// every flush_ms. Losses are counted as in the preload path: lost perf
// records (samples_dropped_ring_full), stacks deeper than the copy or
// max_depth (truncated_stacks), samples that could not be unwound
// (unwind_failures), threads whose event could not be opened (timers_failed).
//
// Thread-safety: not thread-safe; Poll() from one thread. Finish() may run on
// another thread once Done().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config.h"
#include "sample_sink.h"

namespace stackstream {
namespace agent {

class ElfFileCache;
class PerfThreadEvent;
class ProcessMaps;
class RemoteUnwinder;
struct PerfSample;
namespace pipeline {
class Symbolizer;
}  // namespace pipeline

class AttachSession {
 public:
  // "vars": STACKSTREAM_* settings (name -> value) as a preloaded host's
  // environment would give them (service, labels, hz, collector, output,
  // ...); the default service is the target's executable basename. "files"
  // and "symbolizer" are shared with other sessions and outlive this one.
  AttachSession(pid_t pid, std::map<std::string, std::string> vars,
                std::shared_ptr<ElfFileCache> files, pipeline::Symbolizer* symbolizer);
  ~AttachSession();
  AttachSession(const AttachSession&) = delete;
  AttachSession& operator=(const AttachSession&) = delete;

  // Opens the target: its modules and one event per thread. False with
  // "*error" set (a sentence saying what to change) when it cannot be
  // profiled at all; threads that could not be opened while others could
  // are counted, not fatal.
  bool Start(std::string* error);

  // Reads the rings, picks up new threads and modules, closes a window when
  // flush_ms has passed. "final": drain, close the last window, Done().
  void Poll(int64_t now_ns, bool final);

  // A thread's event hung up (the thread exited): rescan at the next Poll.
  void RescanThreadsSoon() { next_scan_ns_ = 0; }

  // The target has exited (its remaining samples are still drained).
  bool TargetGone();
  bool Done() const { return done_; }
  // Delivers what is pending until "deadline_ns" (CLOCK_MONOTONIC). After Done().
  void Finish(int64_t deadline_ns);

  // The perf event descriptors: readable when a ring is half full (poll
  // them to drain before a fast sampling rate fills a ring).
  std::vector<int> event_fds() const;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const Config& config() const { return config_; }
  int64_t samples() const { return samples_; }
  int threads_seen() const { return threads_seen_; }
  int threads_failed() const { return threads_failed_; }
  int64_t lost() const { return lost_total_; }
  int64_t not_unwound() const { return not_unwound_; }

 private:
  void ScanThreads();
  void OpenThread(pid_t tid);
  void DrainAll();
  void OnSample(const PerfSample& s);
  void CloseWindow();

  pid_t pid_;
  std::map<std::string, std::string> vars_;
  Config config_;
  std::shared_ptr<ElfFileCache> files_;
  pipeline::Symbolizer* symbolizer_;
  std::string name_;
  std::string exe_;
  int pidfd_ = -1;
  bool gone_ = false;
  bool done_ = false;
  std::unique_ptr<ProcessMaps> maps_;
  bool maps_dirty_ = false;
  int64_t last_maps_refresh_ns_ = 0;
  std::map<pid_t, std::unique_ptr<PerfThreadEvent>> events_;
  std::map<pid_t, bool> failed_tids_;  // threads whose event could not be opened
  std::unique_ptr<RemoteUnwinder> unwinder_;
  std::unique_ptr<SampleSink> sink_;
  std::vector<uint64_t> pcs_;
  SamplingCounters pending_;
  int64_t realtime_offset_ns_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC
  int64_t next_flush_ns_ = 0;
  int64_t next_scan_ns_ = 0;
  int64_t samples_ = 0;
  int64_t lost_total_ = 0;
  int64_t not_unwound_ = 0;
  int threads_seen_ = 0;
  int threads_failed_ = 0;
  int first_error_ = 0;             // errno of the first thread that could not be opened
  std::string first_error_what_;
  std::mt19937_64 rng_;             // per-thread sampling periods
};

}  // namespace agent
}  // namespace stackstream
