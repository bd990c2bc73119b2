// The handler, rings and clocks together, without the capture thread: arm a
// clock on this thread, burn CPU, and check what lands in the ring.
#include "capture/signal_handler.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "capture/sample_timer.h"
#include "capture/thread_registry.h"
#include "capture/thread_scan.h"

namespace stackstream {
namespace agent {
namespace {

double ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int Signal() {
  static int sig = [] {
    int s = PickSampleSignal();
    EXPECT_GT(s, 0);
    EXPECT_TRUE(InstallSampleHandler(s));
    return s;
  }();
  return sig;
}

class HandlerTest : public ::testing::TestWithParam<bool> {};

TEST_P(HandlerTest, SamplesOfThisThreadLandInItsRing) {
  const bool use_perf = GetParam();
  if (use_perf && !PerfTaskClockAvailable()) GTEST_SKIP() << "perf_event_open not permitted";
  int sig = Signal();
  EXPECT_TRUE(HandlerIsInstalled(sig));
  ThreadRegistry reg(256, kStackCopyBytes);
  ThreadState* ts;
  {
    std::lock_guard<std::mutex> lock(reg.mu());
    ts = reg.Acquire(CurrentTid());
  }
  ASSERT_NE(ts, nullptr);
  uint64_t lo = 0, hi = 0;
  ASSERT_TRUE(CurrentThreadStackBounds(&lo, &hi));
  ts->stack_lo = lo;
  ts->stack_hi = hi;
  ts->active = true;
  SetSamplingEnabled(true);
  ClockSpec spec;
  spec.use_perf = use_perf;
  spec.signo = sig;
  spec.period_ns = 1000000;  // 1 kHz
  int err = 0;
  ASSERT_TRUE(ArmThreadClock(ts, spec, &err)) << strerror(err);
  EXPECT_EQ(ts->clock, use_perf ? ClockKind::kPerfTaskClock : ClockKind::kPosixTimer);
  volatile unsigned x = 1;
  double end = ThreadCpu() + 0.2;
  while (ThreadCpu() < end) {
    for (int i = 0; i < 1000; ++i) x = x * 1664525u + 1013904223u;
  }
  DisarmThreadClock(ts);
  SetSamplingEnabled(false);
  uint64_t weight = 0;
  int records = 0;
  while (const capture::SampleRecord* r = ts->ring.Peek()) {
    ++records;
    weight += r->weight;
    EXPECT_NE(r->regs[capture::kRegRip], 0u);
    EXPECT_EQ(r->regs[capture::kRegRsp], r->stack_start);
    EXPECT_GE(r->stack_start, lo);
    EXPECT_LT(r->stack_start, hi);
    EXPECT_GT(r->stack_size, 0u);
    EXPECT_LE(r->stack_size, kStackCopyBytes);
    EXPECT_EQ(r->tid, CurrentTid());
    ts->ring.Pop();
  }
  uint64_t dropped = ts->ring.header()->dropped_ring_full.load() +
                     ts->ring.header()->dropped_bad_stack.load();
  // 200 ms of CPU at 1 kHz: ~200 samples (generous bounds for sanitizers / load).
  EXPECT_GE(weight + dropped, 120u);
  EXPECT_LE(weight + dropped, 260u);
  EXPECT_GT(records, 0);
}

INSTANTIATE_TEST_SUITE_P(Clocks, HandlerTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Perf" : "PosixTimer"; });

TEST(SignalHandlerTest, ForeignSignalsAreCountedAndIgnored) {
  int sig = Signal();
  uint64_t before = ForeignSignalCount();
  raise(sig);  // SI_TKILL: not ours
  union sigval v;
  v.sival_ptr = nullptr;
  sigqueue(getpid(), sig, v);  // SI_QUEUE: not ours
  EXPECT_EQ(ForeignSignalCount() - before, 2u);
}

TEST(SignalHandlerTest, SpOutsideBoundsIsDroppedAndCounted) {
  ThreadState ts;
  ASSERT_GE(ts.ring.Create(4, 1024, 1), 0);
  ts.stack_lo = 0x1000;
  ts.stack_hi = 0x2000;  // not our stack
  ts.active = true;
  SetSamplingEnabled(true);
  ucontext_t uc;
  ASSERT_EQ(getcontext(&uc), 0);
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  info.si_code = SI_TIMER;
  info.si_value.sival_ptr = &ts;
  errno = 1234;
  SampleSignalHandler(Signal(), &info, &uc);
  EXPECT_EQ(errno, 1234) << "errno restored";
  EXPECT_EQ(ts.ring.header()->dropped_bad_stack.load(), 1u);
  EXPECT_TRUE(ts.ring.Empty());
  // Unknown bounds: the SP is recorded for the capture thread to resolve.
  ts.stack_hi = 0;
  SampleSignalHandler(Signal(), &info, &uc);
  EXPECT_NE(ts.probe_sp.load(), 0u);
  SetSamplingEnabled(false);
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
