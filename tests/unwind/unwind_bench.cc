// RemoteUnwinder cost: ns per Unwind() of a snapshot taken at the bottom of
// an N-frame recursion (warm caches: the same snapshot over and over), plus
// the cold cost (module table rebuilt and every cache flushed each time) and
// unw_backtrace of a similar stack for reference.
//   ./unwind_bench [--benchmark_filter=...]
#include <libunwind.h>

#include <benchmark/benchmark.h>

#include "capture.h"
#include "unwind/remote_unwinder.h"

using stackstream::agent::RemoteUnwinder;
using stackstream::agent::StackSnapshot;
using stackstream::agent::testing::CapturedStack;
using stackstream::agent::testing::CaptureHere;

namespace {

// Each level adds exactly one frame.
__attribute__((noinline)) int Recurse(CapturedStack* out, int depth) {
  int r = depth <= 0 ? (CaptureHere(out), 0) : Recurse(out, depth - 1);
  asm volatile("" ::: "memory");
  return r + 1;
}

__attribute__((noinline)) int RecurseBacktrace(int depth, void** buf, int* n) {
  int r = depth <= 0 ? (*n = unw_backtrace(buf, 256), 0) : RecurseBacktrace(depth - 1, buf, n);
  asm volatile("" ::: "memory");
  return r + 1;
}

// Captures a snapshot about "frames" frames deep in total.
CapturedStack CaptureFrames(int frames) {
  CapturedStack probe;
  Recurse(&probe, 0);
  RemoteUnwinder u;
  uint64_t pcs[512];
  bool t;
  int base = u.Unwind(probe.Snapshot(), pcs, 512, &t);  // frames below the recursion
  CapturedStack cap;
  Recurse(&cap, frames > base ? frames - base : 0);
  return cap;
}

void BM_RemoteUnwindWarm(benchmark::State& state) {
  CapturedStack cap = CaptureFrames(static_cast<int>(state.range(0)));
  StackSnapshot snap = cap.Snapshot();
  RemoteUnwinder unwinder;
  uint64_t pcs[512];
  bool truncated;
  int n = unwinder.Unwind(snap, pcs, 512, &truncated);
  for (auto _ : state) {
    benchmark::DoNotOptimize(unwinder.Unwind(snap, pcs, 512, &truncated));
  }
  state.counters["frames"] = n;
  state.counters["ns_per_frame"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RemoteUnwindWarm)->Arg(10)->Arg(30)->Arg(100);

void BM_RemoteUnwindCold(benchmark::State& state) {
  CapturedStack cap = CaptureFrames(static_cast<int>(state.range(0)));
  StackSnapshot snap = cap.Snapshot();
  RemoteUnwinder unwinder;
  uint64_t pcs[512];
  bool truncated;
  int n = unwinder.Unwind(snap, pcs, 512, &truncated);
  for (auto _ : state) {
    unwinder.InvalidateModules();
    benchmark::DoNotOptimize(unwinder.Unwind(snap, pcs, 512, &truncated));
  }
  state.counters["frames"] = n;
}
BENCHMARK(BM_RemoteUnwindCold)->Arg(10)->Arg(30)->Arg(100);

void BM_LocalUnwBacktrace(benchmark::State& state) {
  void* buf[256];
  int n = 0;
  for (auto _ : state) {
    RecurseBacktrace(static_cast<int>(state.range(0)) - 8, buf, &n);
  }
  state.counters["frames"] = n;
}
BENCHMARK(BM_LocalUnwBacktrace)->Arg(10)->Arg(30)->Arg(100);

}  // namespace

BENCHMARK_MAIN();
