// RemoteUnwinder cost: ns per Unwind() of a snapshot taken at the bottom of
// an N-frame recursion, with the module tables read from the module files:
//   Warm        the same snapshot over and over (libunwind caches warm);
//   ColdUnwinder a new RemoteUnwinder each time (a new client process),
//               sharing an ElfFileCache whose pages are warm;
//   ColdFiles   a new RemoteUnwinder and a new ElfFileCache each time (files
//               opened, verified by build-id and read again);
// and unw_backtrace of a similar stack for reference.
//   ./unwind_bench [--benchmark_filter=...]
#include <libunwind.h>

#include <benchmark/benchmark.h>

#include "capture.h"
#include "unwind/elf_file_cache.h"
#include "unwind/remote_unwinder.h"

using stackstream::agent::ElfFileCache;
using stackstream::agent::ModuleSet;
using stackstream::agent::RemoteUnwinder;
using stackstream::agent::StackSnapshot;
using stackstream::agent::testing::CapturedStack;
using stackstream::agent::testing::CaptureHere;
using stackstream::agent::testing::ScanModuleSet;

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

const ModuleSet& Modules() {
  static std::shared_ptr<const ModuleSet> set = ScanModuleSet();
  return *set;
}

// Captures a snapshot about "frames" frames deep in total.
CapturedStack CaptureFrames(int frames) {
  CapturedStack probe;
  Recurse(&probe, 0);
  RemoteUnwinder u;
  uint64_t pcs[512];
  bool t;
  int base = u.Unwind(Modules(), probe.Snapshot(), pcs, 512, &t);  // frames below the recursion
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
  int n = unwinder.Unwind(Modules(), snap, pcs, 512, &truncated);
  for (auto _ : state) {
    benchmark::DoNotOptimize(unwinder.Unwind(Modules(), snap, pcs, 512, &truncated));
  }
  state.counters["frames"] = n;
  state.counters["ns_per_frame"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["lookups_per_unwind"] =
      static_cast<double>(unwinder.stats().proc_info_lookups) / unwinder.stats().unwinds;
}
BENCHMARK(BM_RemoteUnwindWarm)->Arg(10)->Arg(30)->Arg(100);

void BM_RemoteUnwindColdUnwinder(benchmark::State& state) {
  CapturedStack cap = CaptureFrames(static_cast<int>(state.range(0)));
  StackSnapshot snap = cap.Snapshot();
  auto files = std::make_shared<ElfFileCache>();
  uint64_t pcs[512];
  bool truncated;
  int n = RemoteUnwinder(files).Unwind(Modules(), snap, pcs, 512, &truncated);
  for (auto _ : state) {
    RemoteUnwinder unwinder(files);
    benchmark::DoNotOptimize(unwinder.Unwind(Modules(), snap, pcs, 512, &truncated));
  }
  state.counters["frames"] = n;
}
BENCHMARK(BM_RemoteUnwindColdUnwinder)->Arg(10)->Arg(30)->Arg(100);

void BM_RemoteUnwindColdFiles(benchmark::State& state) {
  CapturedStack cap = CaptureFrames(static_cast<int>(state.range(0)));
  StackSnapshot snap = cap.Snapshot();
  uint64_t pcs[512];
  bool truncated;
  int n = 0;
  for (auto _ : state) {
    RemoteUnwinder unwinder(std::make_shared<ElfFileCache>());
    n = unwinder.Unwind(Modules(), snap, pcs, 512, &truncated);
  }
  state.counters["frames"] = n;
}
BENCHMARK(BM_RemoteUnwindColdFiles)->Arg(10)->Arg(30)->Arg(100);

// Two client processes drained in turn on one thread, "batch" samples each:
// libunwind's per-thread cache changes hands at every switch.
void BM_RemoteUnwindAlternating(benchmark::State& state) {
  CapturedStack cap = CaptureFrames(30);
  StackSnapshot snap = cap.Snapshot();
  auto files = std::make_shared<ElfFileCache>();
  RemoteUnwinder a(files), b(files);
  uint64_t pcs[512];
  bool truncated;
  const int batch = static_cast<int>(state.range(0));
  int n = a.Unwind(Modules(), snap, pcs, 512, &truncated);
  int64_t i = 0;
  for (auto _ : state) {
    RemoteUnwinder& u = (i++ / batch) % 2 == 0 ? a : b;
    benchmark::DoNotOptimize(u.Unwind(Modules(), snap, pcs, 512, &truncated));
  }
  state.counters["frames"] = n;
  state.counters["ns_per_frame"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * n,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RemoteUnwindAlternating)->Arg(1)->Arg(4)->Arg(16);

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
