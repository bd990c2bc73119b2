#include "capture/sample_timer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include "capture/signal_handler.h"

namespace stackstream {
namespace agent {
namespace {

// The CPU clock of any thread of this process (glibc's MAKE_THREAD_CPUCLOCK
// with CPUCLOCK_SCHED): usable from another thread, unlike
// CLOCK_THREAD_CPUTIME_ID.
clockid_t ThreadCpuClock(pid_t tid) {
  return static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
}

int64_t RandomOffset(int64_t period_ns) {
  // Seeded per thread AND per process: a fork()ed child inherits the
  // parent's state and would otherwise draw the parent's next value, the
  // same in every child (all of them sampled, or none).
  static thread_local pid_t seeded_tid = 0;
  static thread_local std::minstd_rand rng;
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (tid != seeded_tid) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    rng.seed(static_cast<unsigned>(tid) * 2654435761u ^ static_cast<unsigned>(now.tv_nsec));
    seeded_tid = tid;
  }
  return 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(period_ns));
}

timespec ToTimespec(int64_t ns) {
  timespec t;
  t.tv_sec = ns / 1000000000LL;
  t.tv_nsec = ns % 1000000000LL;
  return t;
}

bool ArmPosixTimer(ThreadState* ts, const ClockSpec& spec, int* err) {
  pid_t tid = ts->tid.load(std::memory_order_relaxed);
  sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = spec.signo;
  sev.sigev_value.sival_ptr = ts;
  sev._sigev_un._tid = tid;
  timer_t timer;
  clockid_t clock = spec.wall ? CLOCK_MONOTONIC : ThreadCpuClock(tid);
  if (timer_create(clock, &sev, &timer) != 0) {
    *err = errno;
    return false;
  }
  itimerspec its;
  its.it_interval = ToTimespec(spec.period_ns);
  // Spread first expirations so that threads do not all fire together.
  its.it_value = ToTimespec(RandomOffset(spec.period_ns));
  if (timer_settime(timer, 0, &its, nullptr) != 0) {
    *err = errno;
    timer_delete(timer);
    return false;
  }
  ts->timer = timer;
  ts->clock = ClockKind::kPosixTimer;
  return true;
}

int OpenPerfTaskClockWith(pid_t tid, int64_t period_ns, bool user_only);

// Counts kernel time too where permitted (CAP_PERFMON, or
// perf_event_paranoid < 2), else user time only (paranoid 2 allows that for
// one's own threads).
int OpenPerfTaskClock(pid_t tid, int64_t period_ns) {
  static std::atomic<bool> user_only{false};
  if (!user_only.load(std::memory_order_relaxed)) {
    int fd = OpenPerfTaskClockWith(tid, period_ns, false);
    if (fd >= 0 || (errno != EACCES && errno != EPERM)) return fd;
    user_only.store(true, std::memory_order_relaxed);
  }
  return OpenPerfTaskClockWith(tid, period_ns, true);
}

int OpenPerfTaskClockWith(pid_t tid, int64_t period_ns, bool user_only) {
  perf_event_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.sample_period = static_cast<uint64_t>(period_ns);
  attr.disabled = 1;
  attr.exclude_kernel = user_only ? 1 : 0;
  attr.exclude_hv = 1;
  attr.wakeup_events = 1;
  return static_cast<int>(
      syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

bool ArmPerf(ThreadState* ts, const ClockSpec& spec, int* err) {
  pid_t tid = ts->tid.load(std::memory_order_relaxed);
  // The first period is drawn uniformly in (0, period]: a thread (or a
  // forked child) that runs for less than one period still gets its fair
  // chance of a sample. The handler re-draws every later period.
  int fd = OpenPerfTaskClock(tid, RandomOffset(spec.period_ns));
  if (fd < 0) {
    *err = errno;
    return false;
  }
  if (!RegisterPerfFd(fd, ts)) {
    close(fd);
    *err = EMFILE;
    return false;
  }
  f_owner_ex owner;
  owner.type = F_OWNER_TID;
  owner.pid = tid;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC | O_NONBLOCK) != 0 ||
      fcntl(fd, F_SETSIG, spec.signo) != 0 || fcntl(fd, F_SETOWN_EX, &owner) != 0 ||
      ioctl(fd, PERF_EVENT_IOC_RESET, 0) != 0 ||
      ioctl(fd, PERF_EVENT_IOC_REFRESH, 1) != 0) {
    *err = errno;
    UnregisterPerfFd(fd);
    close(fd);
    return false;
  }
  ts->perf_fd = fd;
  ts->rng_state ^= static_cast<uint64_t>(tid) * 0x9e3779b97f4a7c15ULL;
  if (ts->rng_state == 0) ts->rng_state = 1;
  ts->perf_period_ns.store(static_cast<uint64_t>(spec.period_ns), std::memory_order_relaxed);
  ts->clock = ClockKind::kPerfTaskClock;
  return true;
}

}  // namespace

bool ArmThreadClock(ThreadState* ts, const ClockSpec& spec, int* err) {
  *err = 0;
  if (!spec.wall && spec.use_perf && ArmPerf(ts, spec, err)) return true;
  return ArmPosixTimer(ts, spec, err);
}

bool SwitchToPosixTimer(ThreadState* ts, const ClockSpec& spec, int* err) {
  DisarmThreadClock(ts);
  return ArmPosixTimer(ts, spec, err);
}

void DisarmThreadClock(ThreadState* ts) {
  switch (ts->clock) {
    case ClockKind::kPosixTimer:
      timer_delete(ts->timer);
      break;
    case ClockKind::kPerfTaskClock:
      ioctl(ts->perf_fd, PERF_EVENT_IOC_DISABLE, 0);
      UnregisterPerfFd(ts->perf_fd);
      close(ts->perf_fd);
      ts->perf_fd = -1;
      break;
    case ClockKind::kNone:
      break;
  }
  ts->clock = ClockKind::kNone;
}

void ForgetInheritedClock(ThreadState* ts) {
  if (ts->clock == ClockKind::kPerfTaskClock && ts->perf_fd >= 0) close(ts->perf_fd);
  ts->perf_fd = -1;
  ts->clock = ClockKind::kNone;
}

bool PerfTaskClockAvailable() {
  int fd = OpenPerfTaskClock(static_cast<pid_t>(syscall(SYS_gettid)), 10000000);
  if (fd < 0) return false;
  close(fd);
  return true;
}

}  // namespace agent
}  // namespace stackstream
