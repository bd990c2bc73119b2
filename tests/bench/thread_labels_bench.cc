// Cost of the span-profile C API (stackstream_set_thread_label /
// stackstream_clear_thread_label) as a host pays it: the program links
// libstackstream.so and calls the exported functions (run it with
// STACKSTREAM_DISABLE=1 so the agent does not sample this process; the
// labels work the same either way).
//
//   STACKSTREAM_DISABLE=1 build/tests/bench/thread_labels_bench
#include <benchmark/benchmark.h>

#include "stackstream/agent.h"

namespace {

const char* const kSpans[2] = {"00f067aa0ba902b7", "7e2b1c0d9a8f6e5d"};

// One label rewritten (the common case: a new span_id on a span switch).
void BM_SetSpanId(benchmark::State& state) {
  unsigned i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(stackstream_set_thread_label("span_id", kSpans[++i & 1]));
  }
  stackstream_clear_thread_label("span_id");
}
BENCHMARK(BM_SetSpanId);

// Set then clear one label: two calls per iteration.
void BM_SetThenClearSpanId(benchmark::State& state) {
  unsigned i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(stackstream_set_thread_label("span_id", kSpans[++i & 1]));
    benchmark::DoNotOptimize(stackstream_clear_thread_label("span_id"));
  }
}
BENCHMARK(BM_SetThenClearSpanId);

// A whole span switch as agent.h recommends it: clear span_id, set
// trace_id and span_name, set span_id last (four calls).
void BM_SpanSwitch(benchmark::State& state) {
  unsigned i = 0;
  for (auto _ : state) {
    ++i;
    stackstream_clear_thread_label("span_id");
    stackstream_set_thread_label("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
    stackstream_set_thread_label("span_name", (i & 1) ? "GET /api/users" : "SELECT users");
    benchmark::DoNotOptimize(stackstream_set_thread_label("span_id", kSpans[i & 1]));
  }
  stackstream_clear_thread_label("span_id");
  stackstream_clear_thread_label("trace_id");
  stackstream_clear_thread_label("span_name");
}
BENCHMARK(BM_SpanSwitch);

}  // namespace

BENCHMARK_MAIN();
