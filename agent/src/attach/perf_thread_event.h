// PerfThreadEvent: one thread of another process sampled from outside with
// perf_event_open: a user-space-only task-clock (PERF_COUNT_SW_TASK_CLOCK,
// exclude_kernel) at a fixed period, each sample carrying the thread id, the
// time (CLOCK_MONOTONIC), the user registers and a copy of the top
// kStackBytes of its user stack (PERF_SAMPLE_TID | TIME | REGS_USER |
// STACK_USER), read from the event's mmap'd ring. The event also reports the
// thread's executable mmaps (PERF_RECORD_MMAP2) and the threads it creates
// (PERF_RECORD_FORK), so that modules and threads are picked up at once.
//
// Nothing is done to the thread itself: it is never stopped or modified.
//
// Thread-safety: not thread-safe; owned by one AttachSession.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace stackstream {
namespace agent {

// One PERF_RECORD_SAMPLE, decoded. Valid only during the callback.
struct PerfSample {
  int32_t pid = 0, tid = 0;
  uint64_t time_ns = 0;          // CLOCK_MONOTONIC
  bool has_regs = false;         // false: taken in a kernel thread / without user regs
  uint64_t regs[17] = {};        // libunwind's x86_64 numbering (capture::kSnapshotRegs)
  const uint8_t* stack = nullptr;
  uint64_t stack_size = 0;       // bytes valid in "stack" (dyn_size)
  uint64_t stack_requested = 0;  // bytes asked for
};

struct PerfRecordHandler {
  std::function<void(const PerfSample&)> sample;
  std::function<void(uint64_t lost)> lost;                 // PERF_RECORD_LOST(_SAMPLES)
  std::function<void(bool exec)> mmap;                     // PERF_RECORD_MMAP2
  std::function<void(int32_t pid, int32_t tid)> fork;     // PERF_RECORD_FORK (new thread)
};

class PerfThreadEvent {
 public:
  static constexpr uint32_t kStackBytes = 32 * 1024;  // as the in-process capture

  ~PerfThreadEvent();
  PerfThreadEvent(const PerfThreadEvent&) = delete;
  PerfThreadEvent& operator=(const PerfThreadEvent&) = delete;

  // Opens and maps the event of thread "tid" sampling every "period_ns" of
  // its user CPU time. Null on failure with "*error" = errno (ESRCH: the
  // thread is gone already) and "*what" = the call that failed.
  static std::unique_ptr<PerfThreadEvent> Open(pid_t tid, uint64_t period_ns, int* error,
                                               std::string* what);

  // Decodes every record in the ring, calling "handler" for each.
  // Returns the number of records read.
  int Drain(const PerfRecordHandler& handler);

  pid_t tid() const { return tid_; }
  int fd() const { return fd_; }

 private:
  PerfThreadEvent() = default;
  pid_t tid_ = 0;
  int fd_ = -1;
  void* base_ = nullptr;
  size_t map_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  std::vector<uint8_t> record_;  // a record that wraps around the ring's end
};

}  // namespace agent
}  // namespace stackstream
