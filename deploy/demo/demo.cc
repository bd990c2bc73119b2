// stackstream-demo: the program the quickstart profiles. A small "request
// handler" workload with a known shape: each of N worker threads handles
// requests whose CPU splits roughly 50% parse_request, 30% compress_response,
// 20% checksum, for D seconds.
//   stackstream-demo [seconds=5] [threads=2]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

volatile uint64_t g_sink;

// Each stage runs its own copy of the same loop, so its CPU is its own
// (self) time and the split follows the iteration counts 5:3:2.
#define SPIN(iters, seed)                                                        \
  uint64_t x = (seed);                                                           \
  for (uint64_t i = 0; i < (iters); ++i) {                                       \
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;                     \
    asm volatile("" : "+r"(x));                                                  \
  }                                                                              \
  return x

__attribute__((noinline)) uint64_t parse_request(uint64_t seed) { SPIN(500000, seed); }
__attribute__((noinline)) uint64_t compress_response(uint64_t seed) { SPIN(300000, seed); }
__attribute__((noinline)) uint64_t checksum(uint64_t seed) { SPIN(200000, seed); }

__attribute__((noinline)) void handle_request(uint64_t id) {
  g_sink = parse_request(id) ^ compress_response(id) ^ checksum(id);
}

void Worker(double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t id = 0;
  while (std::chrono::steady_clock::now() < end) handle_request(id++);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(Worker, seconds);
  for (auto& t : pool) t.join();
  fprintf(stderr, "stackstream-demo: done (%d threads, %.1f s)\n", threads, seconds);
  return 0;
}
