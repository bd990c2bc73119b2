// bench_accuracy: fixtures with a known CPU split for the accuracy benchmark
// (tests/bench/bench.py). Each fixture measures its own ground truth: the
// thread CPU time (CLOCK_THREAD_CPUTIME_ID) spent in each hot function,
// summed over all calls, printed as one JSON line on stdout at exit.
//
//   bench_accuracy split PCT_A THREADS CPU_SECONDS
//       THREADS threads, each alternating split_a / split_b chunks of identical
//       code with PCT_A% of the iterations in split_a; chunk lengths are
//       pseudo-random (0.2..2 ms) so no period can alias with a sampling clock.
//   bench_accuracy threads W0,W1,... CPU_SECONDS
//       one thread per weight; thread k runs only thread_fn_k and does a share
//       Wk/sum(W) of the total work; all threads run concurrently.
//   bench_accuracy tick MS_A MS_B WALL_SECONDS
//       one thread alternating tick_a (busy MS_A ms) and tick_b (busy MS_B ms)
//       on an absolute schedule (no drift); with 1 / 3 ms and a 250 Hz
//       scheduler tick the period equals the tick, the worst case for
//       tick-driven CPU clocks.
//
// Every hot loop is expanded in place (macro), so the hot function is the leaf
// frame of every sample taken in it; no frame-pointer assumptions.
#include <pthread.h>
#include <time.h>
#include <x86intrin.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile uint64_t g_sink;

// "salt" differs per function so no two hot functions have identical code
// (GCC's identical-code folding would merge them; -fno-ipa-icf as well).
#define BENCH_SPIN(x, n, salt)                                             \
  for (uint64_t i_ = 0; i_ < (n); ++i_) {                                  \
    (x) = (x) * 6364136223846793005ULL + (1442695040888963407ULL + (salt)); \
    (x) ^= (x) >> 29;                                                      \
  }

// Spins until the TSC passes "deadline", checking every 256 iterations.
#define BENCH_SPIN_UNTIL(x, deadline, salt) \
  do {                                      \
    BENCH_SPIN(x, 256, salt);               \
  } while (__rdtsc() < (deadline))

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

}  // namespace

// ---- hot functions -------------------------------------------------------
// extern "C" with plain names, so every profiler and symbolizer reports them
// under the same name.
extern "C" {
__attribute__((noinline)) uint64_t split_a(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 1); return x; }
__attribute__((noinline)) uint64_t split_b(uint64_t x, uint64_t n) { BENCH_SPIN(x, n, 2); return x; }

#define THREAD_FN(k)                                                        \
  __attribute__((noinline)) uint64_t thread_fn_##k(uint64_t x, uint64_t n) { \
    BENCH_SPIN(x, n, 10 + k);                                               \
    return x;                                                               \
  }
THREAD_FN(0) THREAD_FN(1) THREAD_FN(2) THREAD_FN(3)
THREAD_FN(4) THREAD_FN(5) THREAD_FN(6) THREAD_FN(7)

__attribute__((noinline)) uint64_t tick_a(uint64_t x, uint64_t deadline) {
  BENCH_SPIN_UNTIL(x, deadline, 3);
  return x;
}
__attribute__((noinline)) uint64_t tick_b(uint64_t x, uint64_t deadline) {
  BENCH_SPIN_UNTIL(x, deadline, 4);
  return x;
}
}  // extern "C"

namespace {

typedef uint64_t (*WorkFn)(uint64_t, uint64_t);
const WorkFn kThreadFns[8] = {thread_fn_0, thread_fn_1, thread_fn_2, thread_fn_3,
                              thread_fn_4, thread_fn_5, thread_fn_6, thread_fn_7};

// ---- truth accounting ----------------------------------------------------
std::mutex g_mu;
std::map<std::string, int64_t> g_truth_ns;       // function -> thread CPU ns
std::map<std::string, int64_t> g_thread_cpu_ns;  // "thread k" -> thread CPU ns

void AddTruth(const std::map<std::string, int64_t>& local, const std::string& thread, int64_t cpu) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& kv : local) g_truth_ns[kv.first] += kv.second;
  g_thread_cpu_ns[thread] += cpu;
}

// Iterations per CPU millisecond of BENCH_SPIN, measured once.
double ItersPerMs() {
  uint64_t x = 1;
  uint64_t n = 4000000;
  int64_t t0 = ThreadCpuNs();
  BENCH_SPIN(x, n, 0);
  int64_t t1 = ThreadCpuNs();
  g_sink = x;
  return n / ((t1 - t0) / 1e6);
}

// Tiny deterministic PRNG for chunk lengths.
uint64_t NextRand(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

void SplitWorker(int k, double pct_a, uint64_t total_iters, double iters_per_ms) {
  uint64_t rng = 0x1234567ULL + k * 7919;
  uint64_t x = k + 1;
  std::map<std::string, int64_t> local;
  int64_t start = ThreadCpuNs();
  uint64_t done = 0;
  while (done < total_iters) {
    // chunk: 0.2 .. 2.0 ms of work, split pct_a / (100 - pct_a)
    double ms = 0.2 + (NextRand(&rng) % 1000) / 1000.0 * 1.8;
    uint64_t chunk = static_cast<uint64_t>(ms * iters_per_ms);
    if (chunk > total_iters - done) chunk = total_iters - done;
    uint64_t na = static_cast<uint64_t>(chunk * pct_a / 100.0);
    uint64_t nb = chunk - na;
    int64_t t0 = ThreadCpuNs();
    x = split_a(x, na);
    int64_t t1 = ThreadCpuNs();
    x = split_b(x, nb);
    int64_t t2 = ThreadCpuNs();
    local["split_a"] += t1 - t0;
    local["split_b"] += t2 - t1;
    done += chunk;
  }
  g_sink = x;
  AddTruth(local, "thread " + std::to_string(k), ThreadCpuNs() - start);
}

void ThreadsWorker(int k, uint64_t iters, double iters_per_ms) {
  uint64_t rng = 0xABCDEFULL + k * 104729;
  uint64_t x = k + 1;
  std::map<std::string, int64_t> local;
  std::string name = "thread_fn_" + std::to_string(k);
  int64_t start = ThreadCpuNs();
  uint64_t done = 0;
  while (done < iters) {
    double ms = 0.2 + (NextRand(&rng) % 1000) / 1000.0 * 1.8;
    uint64_t chunk = static_cast<uint64_t>(ms * iters_per_ms);
    if (chunk > iters - done) chunk = iters - done;
    int64_t t0 = ThreadCpuNs();
    x = kThreadFns[k](x, chunk);
    local[name] += ThreadCpuNs() - t0;
    done += chunk;
  }
  g_sink = x;
  AddTruth(local, "thread " + std::to_string(k), ThreadCpuNs() - start);
}

void TickWorker(double ms_a, double ms_b, double wall_seconds) {
  // TSC ticks per ns, calibrated against CLOCK_MONOTONIC over 50 ms.
  int64_t m0 = MonoNs();
  uint64_t c0 = __rdtsc();
  while (MonoNs() - m0 < 50000000) {
  }
  double tsc_per_ns = static_cast<double>(__rdtsc() - c0) / (MonoNs() - m0);
  uint64_t ticks_a = static_cast<uint64_t>(ms_a * 1e6 * tsc_per_ns);
  uint64_t ticks_b = static_cast<uint64_t>(ms_b * 1e6 * tsc_per_ns);

  std::map<std::string, int64_t> local;
  uint64_t x = 7;
  int64_t start = ThreadCpuNs();
  int64_t end_wall = MonoNs() + static_cast<int64_t>(wall_seconds * 1e9);
  // Phase boundaries on an absolute TSC schedule (start + k * period), not
  // relative to the end of the previous phase: the pattern does not drift
  // against the scheduler tick (which runs off the same clock), so a sampler
  // that fires only on ticks keeps seeing the same phase offset: the worst case.
  uint64_t next = __rdtsc();
  uint64_t period = ticks_a + ticks_b;
  while (MonoNs() < end_wall) {
    uint64_t now = __rdtsc();
    if (now > next + period) next += (now - next) / period * period;  // fell behind: skip
    int64_t t0 = ThreadCpuNs();
    next += ticks_a;
    x = tick_a(x, next);
    int64_t t1 = ThreadCpuNs();
    next += ticks_b;
    x = tick_b(x, next);
    int64_t t2 = ThreadCpuNs();
    local["tick_a"] += t1 - t0;
    local["tick_b"] += t2 - t1;
  }
  g_sink = x;
  AddTruth(local, "thread 0", ThreadCpuNs() - start);
}

void PrintTruth(const char* fixture) {
  std::lock_guard<std::mutex> lock(g_mu);
  printf("{\"fixture\":\"%s\",\"truth_cpu_ns\":{", fixture);
  bool first = true;
  for (const auto& kv : g_truth_ns) {
    printf("%s\"%s\":%lld", first ? "" : ",", kv.first.c_str(), static_cast<long long>(kv.second));
    first = false;
  }
  printf("},\"thread_cpu_ns\":{");
  first = true;
  for (const auto& kv : g_thread_cpu_ns) {
    printf("%s\"%s\":%lld", first ? "" : ",", kv.first.c_str(), static_cast<long long>(kv.second));
    first = false;
  }
  printf("}}\n");
}

int Usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s split PCT_A THREADS CPU_SECONDS\n"
          "       %s threads W0,W1,... CPU_SECONDS\n"
          "       %s tick MS_A MS_B WALL_SECONDS\n",
          argv0, argv0, argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(argv[0]);
  std::string mode = argv[1];
  std::vector<std::thread> pool;
  if (mode == "split" && argc == 5) {
    double pct_a = atof(argv[2]);
    int threads = atoi(argv[3]);
    double cpu_s = atof(argv[4]);
    if (threads < 1 || threads > 64 || pct_a < 0 || pct_a > 100) return Usage(argv[0]);
    double ipm = ItersPerMs();
    uint64_t per_thread = static_cast<uint64_t>(cpu_s * 1000 * ipm / threads);
    for (int k = 0; k < threads; ++k) pool.emplace_back(SplitWorker, k, pct_a, per_thread, ipm);
  } else if (mode == "threads" && argc == 4) {
    std::vector<double> w;
    for (char* p = argv[2]; *p;) {
      w.push_back(strtod(p, &p));
      if (*p == ',') ++p;
      else if (*p) return Usage(argv[0]);
    }
    if (w.empty() || w.size() > 8) return Usage(argv[0]);
    double sum = 0;
    for (double v : w) sum += v;
    double cpu_s = atof(argv[3]);
    double ipm = ItersPerMs();
    for (size_t k = 0; k < w.size(); ++k) {
      uint64_t iters = static_cast<uint64_t>(cpu_s * 1000 * ipm * w[k] / sum);
      pool.emplace_back(ThreadsWorker, static_cast<int>(k), iters, ipm);
    }
  } else if (mode == "tick" && argc == 5) {
    pool.emplace_back(TickWorker, atof(argv[2]), atof(argv[3]), atof(argv[4]));
  } else {
    return Usage(argv[0]);
  }
  for (auto& t : pool) t.join();
  PrintTruth(mode.c_str());
  fflush(stdout);
  return 0;
}
