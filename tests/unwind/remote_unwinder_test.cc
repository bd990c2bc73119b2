// RemoteUnwinder tests: snapshots of known call chains taken in-process,
// unwound with RemoteUnwinder, checked by symbol (dladdr) and against
// unw_backtrace for the same point.
#include "unwind/remote_unwinder.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "capture.h"
#include "unwind/snapshot_regs.h"

using stackstream::agent::kRegRbp;
using stackstream::agent::kRegRip;
using stackstream::agent::kRegRsp;
using stackstream::agent::kSnapshotRegs;
using stackstream::agent::RemoteUnwinder;
using stackstream::agent::StackSnapshot;
using stackstream::agent::testing::CapturedStack;
using stackstream::agent::testing::CaptureHere;
using stackstream::agent::testing::CopyOwnMemory;
using stackstream::agent::testing::ThreadStackEnd;

// ---- known call chains (exported so dladdr names them) ----

extern "C" {
__attribute__((noinline, visibility("default"))) int unwind_test_f3(CapturedStack* out) {
  CaptureHere(out);
  asm volatile("" ::: "memory");
  return 3;
}
__attribute__((noinline, visibility("default"))) int unwind_test_f2(CapturedStack* out) {
  int r = unwind_test_f3(out);
  asm volatile("" ::: "memory");
  return r + 2;
}
__attribute__((noinline, visibility("default"))) int unwind_test_f1(CapturedStack* out) {
  int r = unwind_test_f2(out);
  asm volatile("" ::: "memory");
  return r + 1;
}
__attribute__((noinline, visibility("default"))) int unwind_test_recurse(CapturedStack* out,
                                                                        int depth) {
  int r = depth <= 0 ? (CaptureHere(out), 0) : unwind_test_recurse(out, depth - 1);
  asm volatile("" ::: "memory");
  return r + 1;
}
}

namespace {

std::string SymbolOf(uint64_t pc) {
  Dl_info info;
  // Return addresses may point just past a call at a function's end.
  if (dladdr(reinterpret_cast<void*>(pc - 1), &info) == 0 || info.dli_sname == nullptr) return "";
  return info.dli_sname;
}

int IndexOf(const std::vector<std::string>& syms, const std::string& name, int from = 0) {
  for (int i = from; i < static_cast<int>(syms.size()); ++i) {
    if (syms[i] == name) return i;
  }
  return -1;
}

std::vector<std::string> Symbols(const uint64_t* pcs, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(SymbolOf(pcs[i]));
  return out;
}

std::string Dump(const uint64_t* pcs, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    char buf[64];
    snprintf(buf, sizeof(buf), "#%d 0x%lx ", i, static_cast<unsigned long>(pcs[i]));
    s += buf + SymbolOf(pcs[i]) + "\n";
  }
  return s;
}

TEST(RemoteUnwinderTest, KnownChainMatchesBacktrace) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  ASSERT_FALSE(cap.stack.empty());
  StackSnapshot snap = cap.Snapshot();

  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated = true;
  int n = unwinder.Unwind(snap, pcs, 256, &truncated);
  EXPECT_FALSE(truncated);
  ASSERT_GE(n, 5) << Dump(pcs, n);
  EXPECT_EQ(pcs[0], cap.regs[kRegRip]);

  std::vector<std::string> syms = Symbols(pcs, n);
  EXPECT_NE(syms[0].find("CaptureHere"), std::string::npos) << Dump(pcs, n);
  EXPECT_EQ(syms[1], "unwind_test_f3") << Dump(pcs, n);
  EXPECT_EQ(syms[2], "unwind_test_f2") << Dump(pcs, n);
  EXPECT_EQ(syms[3], "unwind_test_f1") << Dump(pcs, n);
  EXPECT_GT(IndexOf(syms, "main", 4), 3) << Dump(pcs, n);

  // Same return addresses as the local unwinder from the same function.
  ASSERT_GE(cap.backtrace.size(), 2u);
  std::vector<uint64_t> ours(pcs + 1, pcs + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs) << "remote:\n" << Dump(pcs, n) << "local:\n"
                          << Dump(cap.backtrace.data(), static_cast<int>(cap.backtrace.size()));

  // A second unwind (warm caches) gives the same answer.
  uint64_t again[256];
  int n2 = unwinder.Unwind(snap, again, 256, &truncated);
  ASSERT_EQ(n2, n);
  EXPECT_EQ(0, memcmp(pcs, again, sizeof(uint64_t) * n));
}

TEST(RemoteUnwinderTest, DeepRecursionTruncatedAtMaxDepth) {
  CapturedStack cap;
  unwind_test_recurse(&cap, 400);
  StackSnapshot snap = cap.Snapshot();
  RemoteUnwinder unwinder;
  std::vector<uint64_t> pcs(1024);
  bool truncated = false;
  int n = unwinder.Unwind(snap, pcs.data(), 128, &truncated);
  EXPECT_EQ(n, 128);
  EXPECT_TRUE(truncated);
  for (int i = 2; i < n; ++i) ASSERT_EQ(SymbolOf(pcs[i]), "unwind_test_recurse") << i;

  // With room for everything: 401 recursion frames, then the test and main.
  n = unwinder.Unwind(snap, pcs.data(), 1024, &truncated);
  EXPECT_FALSE(truncated);
  std::vector<std::string> syms = Symbols(pcs.data(), n);
  int count = 0;
  for (const auto& s : syms) count += s == "unwind_test_recurse";
  EXPECT_EQ(count, 401);
  EXPECT_GT(IndexOf(syms, "main"), 401);
  std::vector<uint64_t> ours(pcs.begin() + 1, pcs.begin() + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs);

  // Exactly as deep as the stack: not truncated.
  bool t2 = true;
  int exact = unwinder.Unwind(snap, pcs.data(), n, &t2);
  EXPECT_EQ(exact, n);
  EXPECT_FALSE(t2);
  exact = unwinder.Unwind(snap, pcs.data(), n - 1, &t2);
  EXPECT_EQ(exact, n - 1);
  EXPECT_TRUE(t2);
}

TEST(RemoteUnwinderTest, ShortStackCopyStopsCleanly) {
  CapturedStack cap;
  unwind_test_recurse(&cap, 50);
  RemoteUnwinder unwinder;
  uint64_t full[256];
  bool truncated;
  int n_full = unwinder.Unwind(cap.Snapshot(), full, 256, &truncated);
  ASSERT_GT(n_full, 50);
  for (size_t size : {size_t{0}, size_t{8}, size_t{100}, size_t{256}, size_t{1024}}) {
    StackSnapshot snap = cap.Snapshot();
    snap.stack_size = size;
    uint64_t pcs[256];
    int n = unwinder.Unwind(snap, pcs, 256, &truncated);
    EXPECT_GE(n, 1) << size;
    EXPECT_LT(n, n_full) << size;
    EXPECT_FALSE(truncated);
    // Whatever it found is a prefix of the real stack.
    for (int i = 0; i < n; ++i) EXPECT_EQ(pcs[i], full[i]) << "size " << size << " frame " << i;
  }
  StackSnapshot none = cap.Snapshot();
  none.stack = nullptr;
  none.stack_size = 0;
  uint64_t pcs[8];
  EXPECT_GE(unwinder.Unwind(none, pcs, 8, &truncated), 1);
}

TEST(RemoteUnwinderTest, GarbageRegistersGiveAtMostOneFrame) {
  std::mt19937_64 rng(12345);
  std::vector<uint8_t> junk(4096);
  RemoteUnwinder unwinder;
  for (int iter = 0; iter < 2000; ++iter) {
    StackSnapshot snap;
    for (int i = 0; i < kSnapshotRegs; ++i) snap.regs[i] = rng();
    if (iter % 4 == 1) snap.regs[kRegRip] = 0;
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    snap.stack_start = snap.regs[kRegRsp];
    snap.stack = junk.data();
    snap.stack_size = junk.size();
    if (iter % 3 == 0) snap.regs[kRegRbp] = snap.stack_start + 64;  // FP into the junk
    uint64_t pcs[128];
    bool truncated;
    int n = unwinder.Unwind(snap, pcs, 128, &truncated);
    ASSERT_LE(n, 1) << Dump(pcs, n);
    EXPECT_EQ(n, snap.regs[kRegRip] != 0 ? 1 : 0);
    EXPECT_FALSE(truncated);
  }
  // A real PC with a stack pointer nobody copied.
  StackSnapshot snap;
  snap.regs[kRegRip] = reinterpret_cast<uint64_t>(&unwind_test_f2) + 4;
  snap.regs[kRegRsp] = 0x1000;
  uint64_t pcs[16];
  bool truncated;
  EXPECT_EQ(unwinder.Unwind(snap, pcs, 16, &truncated), 1);
}

TEST(RemoteUnwinderTest, ZeroMaxDepth) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  RemoteUnwinder unwinder;
  uint64_t pcs[1];
  bool truncated = false;
  EXPECT_EQ(unwinder.Unwind(cap.Snapshot(), pcs, 0, &truncated), 0);
  EXPECT_EQ(unwinder.Unwind(cap.Snapshot(), pcs, 1, &truncated), 1);
  EXPECT_TRUE(truncated);
}

// ---- frame-pointer fallback: a frame whose PC has no unwind info ----

// A hand-written function with a frame pointer and no CFI: pushes RBP, sets
// RBP, calls "fn(arg)", and returns.
extern "C" int unwind_test_no_cfi(int (*fn)(void*), void* arg);
asm(R"(
  .text
  .globl unwind_test_no_cfi
  .type unwind_test_no_cfi, @function
unwind_test_no_cfi:
  push %rbp
  mov %rsp, %rbp
  sub $0x6000, %rsp
  mov %rdi, %rax
  mov %rsi, %rdi
  call *%rax
  add $1, %eax
  leave
  ret
  .size unwind_test_no_cfi, .-unwind_test_no_cfi
)");

extern "C" __attribute__((noinline, visibility("default"))) int unwind_test_capture_cb(void* arg) {
  CaptureHere(static_cast<CapturedStack*>(arg));
  asm volatile("" ::: "memory");
  return 1;
}

// The leaf must be a frame-pointer frame for the FP step inside
// unwind_test_no_cfi to work, so compile this one with frame pointers.
extern "C" __attribute__((noinline, visibility("default"), optimize("no-omit-frame-pointer"))) int
unwind_test_fp_leaf(void* arg) {
  CaptureHere(static_cast<CapturedStack*>(arg));
  asm volatile("" ::: "memory");
  return 1;
}

TEST(RemoteUnwinderTest, FramePointerFallbackThroughCodeWithoutCfi) {
  CapturedStack cap;
  unwind_test_no_cfi(&unwind_test_fp_leaf, &cap);
  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(cap.Snapshot(), pcs, 256, &truncated);
  std::vector<std::string> syms = Symbols(pcs, n);
  int leaf = IndexOf(syms, "unwind_test_fp_leaf");
  ASSERT_EQ(leaf, 1) << Dump(pcs, n);
  EXPECT_EQ(syms[2], "unwind_test_no_cfi") << Dump(pcs, n);
  // ... and on past the function without CFI to the test body and main.
  EXPECT_GT(IndexOf(syms, "main"), 2) << Dump(pcs, n);
}

// ---- signal handler snapshots from a busy thread ----

struct SignalSample {
  uint64_t regs[kSnapshotRegs];
  uint64_t stack_start;
  size_t stack_size;
  uint8_t stack[64 * 1024];
};

SignalSample* g_sample = nullptr;
std::atomic<uint64_t> g_busy_stack_end{0};
std::atomic<int> g_sample_ready{0};
std::atomic<int> g_sample_request{0};
std::atomic<bool> g_stop{false};

void OnSample(int, siginfo_t*, void* ucv) {
  int saved = errno;
  // Pairs with the release in the test loop: the main thread is done reading
  // the previous sample (TSan does not see pthread_kill as an ordering edge).
  (void)g_sample_request.load(std::memory_order_acquire);
  const auto* uc = static_cast<const ucontext_t*>(ucv);
  SignalSample* s = g_sample;
  stackstream::agent::SnapshotRegsFromUcontext(uc, s->regs);
  uint64_t sp = s->regs[kRegRsp];
  uint64_t end = g_busy_stack_end.load(std::memory_order_relaxed);
  size_t size = end > sp ? end - sp : 0;
  if (size > sizeof(s->stack)) size = sizeof(s->stack);
  s->stack_start = sp;
  s->stack_size = CopyOwnMemory(sp, s->stack, size) ? size : 0;
  g_sample_ready.store(1, std::memory_order_release);
  errno = saved;
}

extern "C" {
__attribute__((noinline, visibility("default"))) double unwind_test_busy_leaf(double x) {
  for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 0.5;
  return x;
}
__attribute__((noinline, visibility("default"))) double unwind_test_busy_mid(double x) {
  double r = unwind_test_busy_leaf(x);
  asm volatile("" ::: "memory");
  return r * 0.5;
}
__attribute__((noinline, visibility("default"))) void* unwind_test_busy_thread(void*) {
  g_busy_stack_end.store(ThreadStackEnd());
  volatile double sink = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    sink = sink + unwind_test_busy_mid(sink);
    if (sink > 1e300) sink = 0;
    char* p = static_cast<char*>(malloc(64));  // also sample inside libc
    p[0] = 1;
    free(p);
  }
  return nullptr;
}
}

TEST(RemoteUnwinderTest, SignalHandlerSnapshotsReachThreadStart) {
  std::unique_ptr<SignalSample> sample(new SignalSample());
  g_sample = sample.get();
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = &OnSample;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  const int sig = SIGRTMIN + 3;
  ASSERT_EQ(sigaction(sig, &sa, &old), 0);

  g_stop = false;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, &unwind_test_busy_thread, nullptr), 0);
  while (g_busy_stack_end.load() == 0) usleep(100);

  RemoteUnwinder unwinder;
  const int kSamples = 300;
  int reached = 0, in_busy = 0;
  std::string first_bad;
  for (int i = 0; i < kSamples; ++i) {
    g_sample_ready.store(0);
    g_sample_request.fetch_add(1, std::memory_order_release);
    ASSERT_EQ(pthread_kill(th, sig), 0);
    while (g_sample_ready.load(std::memory_order_acquire) == 0) sched_yield();
    StackSnapshot snap;
    memcpy(snap.regs, sample->regs, sizeof(snap.regs));
    snap.stack_start = sample->stack_start;
    snap.stack = sample->stack;
    snap.stack_size = sample->stack_size;
    uint64_t pcs[128];
    bool truncated;
    int n = unwinder.Unwind(snap, pcs, 128, &truncated);
    std::vector<std::string> syms = Symbols(pcs, n);
    int start = IndexOf(syms, "unwind_test_busy_thread");
    if (start >= 0) {
      ++reached;
      // Nothing but the thread's entry code above the start function.
      EXPECT_LE(n - start, 4) << Dump(pcs, n);
    } else if (first_bad.empty()) {
      first_bad = Dump(pcs, n);
    }
    in_busy += IndexOf(syms, "unwind_test_busy_leaf") >= 0;
    usleep(500);
  }
  g_stop = true;
  pthread_join(th, nullptr);
  sigaction(sig, &old, nullptr);
  g_sample = nullptr;
  EXPECT_GE(reached, kSamples * 95 / 100) << "first failure:\n" << first_bad;
  EXPECT_GT(in_busy, kSamples / 4);
  printf("signal samples: %d/%d reached thread start, %d in busy_leaf\n", reached, kSamples,
         in_busy);
}

// ---- dlopen'd module unloaded before the unwind ----

int CaptureThroughPlugin(void* handle, CapturedStack* cap) {
  using CallFn = int (*)(int (*)(void*), void*);
  auto call = reinterpret_cast<CallFn>(dlsym(handle, "unwind_test_plugin_call"));
  if (call == nullptr) return -1;
  return call(&unwind_test_capture_cb, cap);
}

TEST(RemoteUnwinderTest, PluginFramesResolveWhileLoaded) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  RemoteUnwinder unwinder;
  unwinder.InvalidateModules();
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(cap.Snapshot(), pcs, 256, &truncated);
  std::vector<std::string> syms = Symbols(pcs, n);
  EXPECT_EQ(syms[1], "unwind_test_capture_cb") << Dump(pcs, n);
  EXPECT_EQ(syms[2], "unwind_test_plugin_call") << Dump(pcs, n);
  EXPECT_GT(IndexOf(syms, "main"), 2) << Dump(pcs, n);
  dlclose(h);
}

TEST(RemoteUnwinderTest, PluginUnloadedBeforeUnwindDoesNotCrash) {
  for (int variant = 0; variant < 3; ++variant) {
    RemoteUnwinder unwinder;
    void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    CapturedStack cap;
    ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
    uint64_t pcs[256];
    bool truncated;
    if (variant == 2) {
      // Warm every cache with the plugin loaded, then unload it.
      unwinder.Unwind(cap.Snapshot(), pcs, 256, &truncated);
    }
    ASSERT_EQ(dlclose(h), 0);
    ASSERT_EQ(dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_NOLOAD), nullptr) << "not unloaded";
    if (variant != 1) unwinder.InvalidateModules();  // variant 1: stale module table
    int n = unwinder.Unwind(cap.Snapshot(), pcs, 256, &truncated);
    ASSERT_GE(n, 2) << Dump(pcs, n);
    EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb");
    EXPECT_FALSE(truncated);
  }
}

}  // namespace
