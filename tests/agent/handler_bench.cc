// Time spent inside the sampling signal handler (the body, without the
// kernel's signal delivery) for a 30-frame stack: the handler is called
// directly with a ucontext captured 30 frames deep; median and p99 over
// many calls. Usage: handler_bench [--depth=30] [--iterations=20000]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <algorithm>
#include <vector>

#include "capture/signal_handler.h"
#include "capture/thread_scan.h"

using namespace stackstream::agent;

namespace {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

ThreadState g_ts;
std::vector<int64_t> g_times;
int g_iterations = 20000;

__attribute__((noinline)) void Measure() {
  ucontext_t uc;
  getcontext(&uc);
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  info.si_code = SI_TIMER;
  info.si_value.sival_ptr = &g_ts;
  for (int i = 0; i < g_iterations; ++i) {
    int64_t t0 = NowNs();
    SampleSignalHandler(SIGRTMAX - 3, &info, &uc);
    int64_t t1 = NowNs();
    g_times.push_back(t1 - t0);
    g_ts.ring.Pop();
  }
}

__attribute__((noinline)) int Recurse(int depth) {
  char pad[64];
  memset(pad, depth, sizeof(pad));
  asm volatile("" : : "r"(pad) : "memory");
  if (depth <= 1) {
    Measure();
    return pad[0];
  }
  return Recurse(depth - 1) + pad[1];
}

}  // namespace

int main(int argc, char** argv) {
  int depth = 30;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--depth=", 8) == 0) depth = atoi(argv[i] + 8);
    if (strncmp(argv[i], "--iterations=", 13) == 0) g_iterations = atoi(argv[i] + 13);
  }
  g_ts.ring.Create(4, kStackCopyBytes, 1);
  uint64_t lo = 0, hi = 0;
  CurrentThreadStackBounds(&lo, &hi);
  g_ts.stack_lo = lo;
  g_ts.stack_hi = hi;
  g_ts.active = true;
  SetSamplingEnabled(true);
  g_times.reserve(g_iterations);
  Recurse(depth);
  std::sort(g_times.begin(), g_times.end());
  int64_t clock_cost = 0;
  {
    std::vector<int64_t> c;
    for (int i = 0; i < 1000; ++i) {
      int64_t a = NowNs();
      int64_t b = NowNs();
      c.push_back(b - a);
    }
    std::sort(c.begin(), c.end());
    clock_cost = c[c.size() / 2];
  }
  printf("handler body, %d-frame stack, %d calls: median %lld ns, p99 %lld ns "
         "(clock_gettime pair %lld ns not subtracted)\n",
         depth, g_iterations, static_cast<long long>(g_times[g_times.size() / 2]),
         static_cast<long long>(g_times[g_times.size() * 99 / 100]),
         static_cast<long long>(clock_cost));
  return 0;
}
