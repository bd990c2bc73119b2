// THE ASYNC-SIGNAL-SAFE ZONE.
//
// Contract (in the spirit of gperftools' profile-handler.h):
// - The capture library owns one real-time signal, chosen at start among those whose
//   disposition is SIG_DFL. It never touches SIGPROF, ITIMER_PROF or any
//   signal the host handles. If the host later installs its own handler for
//   our signal, the capture thread notices (HandlerIsInstalled), logs once and
//   stops sampling; it never re-installs over the host.
// - The signal is only ever generated for one thread at a time: by that
//   thread's POSIX timer (SIGEV_THREAD_ID, si_code SI_TIMER, sival_ptr = its
//   ThreadState) or by its perf task-clock event (F_SETOWN_EX to the tid,
//   F_SETSIG, si_fd indexes the perf fd table). Anything else (kill,
//   sigqueue, tgkill) is counted as foreign and ignored.
// - SampleSignalHandler does, and only does: save errno; find the thread's
//   ThreadState; check the per-thread re-entry guard; check the interrupted
//   SP lies inside the stack bounds recorded at registration; copy the
//   general registers from the ucontext and the bytes [SP, min(SP +
//   kStackCopyBytes, stack end)) of the thread's own stack into a free slot
//   of the thread's SampleRing; copy the thread's labels (thread_labels.h:
//   double-buffered TLS, never torn) and, when the host publishes one, its
//   OpenTelemetry thread context (otel_thread_context.h: one
//   process_vm_readv); read CLOCK_REALTIME (vDSO); publish the slot;
//   for a perf clock, re-draw the next period with ioctl(PERF_EVENT_IOC_PERIOD)
//   (one system call; it breaks phase locking with periodic workloads), and
//   re-arm the one-shot event (PERF_EVENT_IOC_REFRESH; see sample_timer.h);
//   restore errno. The ring's producer guard (ThreadState::in_handler) is
//   shared with the heap profiler's allocator hook on the same thread
//   (heap_sampler.h): a signal that finds the hook writing drops its sample
//   (counted as reentrant) and re-arms its perf clock. No locks, no allocation, no loader lock, no I/O, and no
//   read outside memory that is mapped while the thread runs on it. A full
//   ring, an unknown thread or an SP outside the bounds (sigaltstack,
//   coroutine stacks) drop the sample and bump a counter.
// - The ring is shared memory (a memfd) that stackstream-agent maps: the
//   record is plain data (capture_format.h). Unwinding happens later, in the
//   agent process, from the copy and the module files.
// - Changing shared data: ThreadStates are never freed; the handler only
//   samples a thread whose state is "active". To stop, clear the global
//   enable flag and/or the state's active flag, then disarm the clock; a
//   signal already pending is then dropped.
// - Installed with SA_RESTART: interrupted system calls restart, except
//   those Linux never restarts after a handler (signal(7)): poll, ppoll,
//   select, pselect, epoll_wait, epoll_pwait, nanosleep, clock_nanosleep,
//   usleep, pause, sigsuspend, sigtimedwait, sigwaitinfo, io_getevents,
//   msgrcv/msgsnd, semop/semtimedop, futex waits with a timeout, sockets with
//   SO_RCVTIMEO/SO_SNDTIMEO, read(2) from inotify. In cpu mode the signal
//   only arrives while the thread is running, so these see EINTR very
//   rarely; in wall mode a thread blocked in them sees EINTR about once per
//   sample period. Programs written for signals (retry on EINTR) are fine.
// - SA_ONSTACK: if the host has an alternate signal stack (Go, some
//   coroutine libraries), the handler runs there; it needs < 512 bytes.
#include "capture/signal_handler.h"
#include "capture/otel_thread_context.h"
#include "capture/thread_labels.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <cstddef>

#include "capture/ucontext_regs.h"

namespace stackstream {
namespace agent {
namespace {

std::atomic<bool> g_enabled{false};
std::atomic<uint64_t> g_foreign{0};
std::atomic<ThreadState*> g_perf_fd_table[kPerfFdTableSize];
std::atomic<uint64_t> g_module_generation{0};

// Copies raw stack memory (memcpy is async-signal-safe since POSIX.1-2016).
// Under ASan/TSan the stack holds redzones the sanitizer would flag and its
// memcpy interceptor is not signal-safe: copy word by word, uninstrumented.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
__attribute__((no_sanitize("address", "thread"), noinline,
               optimize("no-tree-loop-distribute-patterns"))) void
CopyBytes(uint8_t* dst, const uint8_t* src, size_t n) {
  typedef uint64_t __attribute__((may_alias, aligned(1))) Word;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    *reinterpret_cast<Word*>(dst + i) = *reinterpret_cast<const Word*>(src + i);
  }
  for (; i < n; ++i) dst[i] = src[i];
}
#else
inline void CopyBytes(uint8_t* dst, const uint8_t* src, size_t n) {
  __builtin_memcpy(dst, src, n);
}
#endif


}  // namespace

void SampleSignalHandler(int signo, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  ThreadState* ts = nullptr;
  int perf_fd = -1;
  uint32_t weight = 1;
  if (info != nullptr && info->si_code == SI_TIMER) {
    ts = static_cast<ThreadState*>(info->si_value.sival_ptr);
    int overrun = info->si_overrun;
    if (overrun > 0) weight += overrun > 10000 ? 10000 : static_cast<uint32_t>(overrun);
  } else if (info != nullptr && info->si_code > 0 && info->si_fd >= 0 &&
             info->si_fd < kPerfFdTableSize) {
    ts = g_perf_fd_table[info->si_fd].load(std::memory_order_acquire);
    perf_fd = info->si_fd;
  }
  if (ts == nullptr || ucontext == nullptr) {
    g_foreign.fetch_add(1, std::memory_order_relaxed);
    errno = saved_errno;
    return;
  }
  if (!g_enabled.load(std::memory_order_relaxed) ||
      !ts->active.load(std::memory_order_acquire) || ts->ring.header() == nullptr) {
    // Paused (C API) or being torn down: keep a one-shot perf clock armed,
    // so that sampling resumes when enabled again.
    if (perf_fd >= 0) ioctl(perf_fd, PERF_EVENT_IOC_REFRESH, 1);
    errno = saved_errno;
    return;
  }
  capture::RingHeader* rh = ts->ring.header();
  int holder = 0;
  if (!ts->in_handler.compare_exchange_strong(holder, 1, std::memory_order_acquire)) {
    rh->reentrant.fetch_add(1, std::memory_order_relaxed);
    // An interrupted handler re-arms a perf clock when it finishes; the heap
    // hook (holder 2, heap_sampler.cc) does not: re-arm here.
    if (holder == 2 && perf_fd >= 0) ioctl(perf_fd, PERF_EVENT_IOC_REFRESH, 1);
    errno = saved_errno;
    return;
  }
  const ucontext_t* uc = static_cast<const ucontext_t*>(ucontext);
  const uint64_t sp = static_cast<uint64_t>(uc->uc_mcontext.gregs[REG_RSP]);
  const uint64_t lo = ts->stack_lo.load(std::memory_order_relaxed);
  const uint64_t hi = ts->stack_hi.load(std::memory_order_relaxed);
  if (hi == 0) {
    // Bounds not known yet (thread found by scanning): let the capture thread
    // look the mapping up.
    ts->probe_sp.store(sp, std::memory_order_relaxed);
    rh->dropped_bad_stack.fetch_add(weight, std::memory_order_relaxed);
  } else if (sp < lo || sp >= hi) {
    rh->dropped_bad_stack.fetch_add(weight, std::memory_order_relaxed);
  } else {
    capture::SampleRecord* rec = ts->ring.TryBeginWrite();
    if (rec == nullptr) {
      rh->dropped_ring_full.fetch_add(weight, std::memory_order_relaxed);
    } else {
      capture::RegsFromUcontext(uc, rec->regs);
      uint64_t avail = hi - sp;
      uint32_t cap = ts->ring.stack_capacity();
      uint32_t n = avail > cap ? cap : static_cast<uint32_t>(avail);
      CopyBytes(ts->ring.StackOf(rec), reinterpret_cast<const uint8_t*>(sp), n);
      rec->stack_start = sp;
      rec->stack_size = n;
      rec->flags = avail > cap ? capture::kRecordStackCut : 0;
      rec->module_generation = g_module_generation.load(std::memory_order_relaxed);
      rec->weight = weight;
      rec->kind = capture::kRecordCpu;
      rec->tid = ts->tid.load(std::memory_order_relaxed);
      CopyThreadLabels(rec);       // this thread's labels (thread_labels.h)
      CopyOtelThreadContext(rec);  // its OpenTelemetry span (otel_thread_context.h)
      timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      rec->timestamp_ns = static_cast<int64_t>(now.tv_sec) * 1000000000LL + now.tv_nsec;
      ts->ring.CommitWrite();
    }
  }
  if (perf_fd >= 0) {
    uint64_t mean = ts->perf_period_ns.load(std::memory_order_relaxed);
    if (mean >= 2) {
      // xorshift64; the thread's own state (handler is not re-entrant).
      uint64_t x = ts->rng_state;
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      ts->rng_state = x;
      uint64_t next = mean / 2 + x % mean;
      ioctl(perf_fd, PERF_EVENT_IOC_PERIOD, &next);
    }
    ioctl(perf_fd, PERF_EVENT_IOC_REFRESH, 1);  // one-shot: re-arm for one more overflow
  }
  ts->in_handler.store(0, std::memory_order_release);
  errno = saved_errno;
}

int PickSampleSignal() {
  // From the top of the real-time range down: hosts and libraries tend to
  // take SIGRTMIN+n from the bottom.
  for (int s = SIGRTMAX - 3; s >= SIGRTMIN + 2; --s) {
    struct sigaction old;
    if (sigaction(s, nullptr, &old) != 0) continue;
    // Ours already (a forked child keeps the parent's signal).
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == SampleSignalHandler) return s;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) return s;
  }
  return -1;
}

bool InstallSampleHandler(int signo) {
  struct sigaction old;
  if (sigaction(signo, nullptr, &old) != 0) return false;
  if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == SampleSignalHandler) return true;
  if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) return false;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = SampleSignalHandler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  return sigaction(signo, &sa, nullptr) == 0;
}

bool HandlerIsInstalled(int signo) {
  struct sigaction cur;
  if (sigaction(signo, nullptr, &cur) != 0) return false;
  return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == SampleSignalHandler;
}

void SetSamplingEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_release); }
bool SamplingEnabled() { return g_enabled.load(std::memory_order_acquire); }

bool RegisterPerfFd(int fd, ThreadState* ts) {
  if (fd < 0 || fd >= kPerfFdTableSize) return false;
  g_perf_fd_table[fd].store(ts, std::memory_order_release);
  return true;
}

void UnregisterPerfFd(int fd) {
  if (fd >= 0 && fd < kPerfFdTableSize) {
    g_perf_fd_table[fd].store(nullptr, std::memory_order_release);
  }
}

void ClearPerfFdTable() {
  for (auto& e : g_perf_fd_table) e.store(nullptr, std::memory_order_relaxed);
}

uint64_t ForeignSignalCount() { return g_foreign.load(std::memory_order_relaxed); }

uint64_t ModuleGeneration() { return g_module_generation.load(std::memory_order_relaxed); }

void SetModuleGeneration(uint64_t generation) {
  g_module_generation.store(generation, std::memory_order_relaxed);
}

}  // namespace agent
}  // namespace stackstream
