// bench_cpu_work: a fixed amount of CPU-bound work for the overhead benchmark
// (tests/bench/bench.py). The work is split evenly over THREADS threads, so the
// process's CPU time does not depend on the thread count; every run of the same
// arguments executes exactly the same instructions.
//
//   bench_cpu_work THREADS MEGA_ITERS          fixed work: MEGA_ITERS million loop
//                                              iterations in total (~1 ns each)
//   bench_cpu_work THREADS --seconds S         steady load for S seconds (wire and
//                                              RSS benchmark)
//
// Every thread handles "requests": a call chain ~14 frames deep (dispatch ->
// recursive route() x 8 -> handle_* -> leaf) ending in one of four leaf
// functions, so a profiler unwinds realistic stacks and sees a handful of
// distinct ones. Worker threads are named "bench-worker" (pthread_setname_np).
// Prints nothing on stdout; a one-line summary goes to stderr.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

volatile uint64_t g_sink;

// The hot loop: a dependent multiply/xor-shift chain the compiler cannot fold
// or vectorize. Expanded by macro (not an inline function) so the leaf frame is
// the function that contains it; "salt" keeps the four leaves from being
// merged by identical-code folding.
#define BENCH_SPIN(x, n, salt)                                             \
  for (uint64_t i_ = 0; i_ < (n); ++i_) {                                  \
    (x) = (x) * 6364136223846793005ULL + (1442695040888963407ULL + (salt)); \
    (x) ^= (x) >> 29;                                                      \
  }

__attribute__((noinline)) uint64_t leaf_parse(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 1); return x; }
__attribute__((noinline)) uint64_t leaf_hash(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 2); return x; }
__attribute__((noinline)) uint64_t leaf_compress(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 3); return x; }
__attribute__((noinline)) uint64_t leaf_encode(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 4); return x; }

__attribute__((noinline)) uint64_t handle_read(uint64_t x, uint64_t n) {
  x = leaf_parse(x, n / 2);
  return leaf_hash(x, n - n / 2) + 1;
}
__attribute__((noinline)) uint64_t handle_write(uint64_t x, uint64_t n) {
  x = leaf_compress(x, n / 2);
  return leaf_encode(x, n - n / 2) + 1;
}

__attribute__((noinline)) uint64_t route(uint64_t x, uint64_t n, int depth) {
  if (depth > 0) return route(x ^ depth, n, depth - 1) + 1;  // not a tail call
  return (x & 1) ? handle_read(x, n) : handle_write(x, n);
}

__attribute__((noinline)) uint64_t dispatch(uint64_t x, uint64_t n) { return route(x, n, 8) + 1; }

constexpr uint64_t kItersPerRequest = 200000;  // ~0.2 ms per request

struct Job {
  uint64_t iters = 0;      // fixed-work mode: iterations for this thread
  double seconds = 0;      // steady mode
  uint64_t seed = 0;
};

void Worker(Job job) {
  pthread_setname_np(pthread_self(), "bench-worker");
  uint64_t x = job.seed * 0x9E3779B97F4A7C15ULL + 1;
  if (job.seconds > 0) {
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(job.seconds);
    while (std::chrono::steady_clock::now() < end) x = dispatch(x, kItersPerRequest);
  } else {
    uint64_t left = job.iters;
    while (left > 0) {
      uint64_t n = left < kItersPerRequest ? left : kItersPerRequest;
      x = dispatch(x, n);
      left -= n;
    }
  }
  g_sink = x;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s THREADS MEGA_ITERS | THREADS --seconds S\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  if (threads < 1 || threads > 256) return 2;
  double seconds = 0;
  uint64_t total = 0;
  if (strcmp(argv[2], "--seconds") == 0 && argc > 3) {
    seconds = atof(argv[3]);
  } else {
    total = static_cast<uint64_t>(atof(argv[2]) * 1e6);
  }
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    Job job;
    job.seconds = seconds;
    job.iters = total / threads + (static_cast<uint64_t>(i) < total % threads ? 1 : 0);
    job.seed = i + 1;
    pool.emplace_back(Worker, job);
  }
  for (auto& t : pool) t.join();
  fprintf(stderr, "bench_cpu_work: %d threads done\n", threads);
  return 0;
}
