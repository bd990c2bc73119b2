// Per-thread sampling clocks: a POSIX timer (timer_create with
// SIGEV_THREAD_ID) on the thread's CPU clock (cpu mode) or CLOCK_MONOTONIC
// (wall mode), or a perf_event_open software task-clock event whose
// overflow signal goes to the thread (cpu mode, where permitted). A perf
// event is one-shot (PERF_EVENT_IOC_REFRESH 1): it stops after each overflow
// until the handler re-arms it, so at most one of its signals is ever
// outstanding. Measured: without that, a signal the kernel cannot queue
// while one is pending falls back to SIGIO, whose default action killed
// ~1 in 1000 short fork()ed children at 100 Hz (and all hung in a SIGIO
// storm with a SIGIO handler at 10 kHz); it also delivered bursts of queued
// signals to threads that had our signal blocked.
//
// Thread-safety: callers serialize per ThreadState (the registry mutex).
// Arming works for any thread of this process, not only the caller.
#pragma once

#include <cstdint>

#include "capture/thread_state.h"

namespace stackstream {
namespace agent {

struct ClockSpec {
  bool wall = false;        // CLOCK_MONOTONIC instead of the thread CPU clock
  bool use_perf = false;    // perf task-clock (cpu mode only)
  int signo = 0;
  int64_t period_ns = 10000000;
};

// Arms a clock for thread ts->tid per "spec" (perf falls back to a POSIX
// timer when perf_event_open fails). Returns false, with errno-like "*err",
// when no clock could be created (e.g. EAGAIN from RLIMIT_SIGPENDING).
bool ArmThreadClock(ThreadState* ts, const ClockSpec& spec, int* err);

// Switches a perf-clocked thread to a POSIX timer (used when the thread
// blocks our signal: perf would queue one signal per period).
bool SwitchToPosixTimer(ThreadState* ts, const ClockSpec& spec, int* err);

// Stops and releases the thread's clock. Safe if none.
void DisarmThreadClock(ThreadState* ts);

// In a forked child: the parent's perf fds were inherited; close our copies
// without touching the parent's events. POSIX timers are not inherited.
void ForgetInheritedClock(ThreadState* ts);

// Whether perf task-clock sampling can be opened for the calling thread.
bool PerfTaskClockAvailable();

}  // namespace agent
}  // namespace stackstream
