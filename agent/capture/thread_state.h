// ThreadState: what the capture library keeps per sampled thread: its stack
// bounds, its sample ring (shared memory, handed to stackstream-agent; the
// drop counters the signal handler bumps live in the ring's header) and its
// sampling clock (POSIX timer or perf event).
//
// Thread-safety: fields marked "handler" are atomics read or written by the
// thread's own signal handler (async-signal-safe) and by the capture thread.
// Fields marked "registry" are guarded by ThreadRegistry::mu().
// ThreadStates are never freed: retired ones are recycled once their ring is
// drained, so a late signal never touches freed memory.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

#include "capture/sample_ring.h"

namespace stackstream {
namespace agent {

enum class ClockKind { kNone, kPosixTimer, kPerfTaskClock };

struct ThreadState {
  // handler: sampling accepted only while true.
  std::atomic<bool> active{false};
  // handler: the thread's stack is [stack_lo, stack_hi); 0/0 = not known yet.
  std::atomic<uint64_t> stack_lo{0};
  std::atomic<uint64_t> stack_hi{0};
  // handler: SP seen by a signal while the bounds were unknown (the drain
  // thread then looks the stack mapping up in /proc/self/maps).
  std::atomic<uint64_t> probe_sp{0};
  std::atomic<int32_t> tid{0};
  // The ring producer's guard: 0 free, 1 the signal handler, 2 the heap
  // profiler's allocator hook (heap_sampler.h).
  std::atomic<int> in_handler{0};
  // handler: perf clocks only; the mean period. The handler re-draws each
  // period uniformly in [period/2, 3*period/2) so that a workload whose
  // phases divide the period cannot phase-lock with it.
  std::atomic<uint64_t> perf_period_ns{0};
  uint64_t rng_state = 0x9e3779b97f4a7c15ULL;  // handler only
  capture::SampleRing ring;        // handler = producer, stackstream-agent = consumer
  int ring_fd = -1;                // the ring's memfd (kept: resent after a reconnect)
  uint32_t ring_id = 0;

  // registry:
  ClockKind clock = ClockKind::kNone;
  timer_t timer{};
  int perf_fd = -1;
  bool foreign = false;       // found by scanning /proc/self/task, not by pthread_create
  bool retired = false;       // the thread is gone (or unregistered)
  int64_t retired_ns = 0;     // CLOCK_MONOTONIC at retirement
  bool free = false;          // in the pool, not tracking any thread
};

}  // namespace agent
}  // namespace stackstream
