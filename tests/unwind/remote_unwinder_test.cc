// RemoteUnwinder tests: snapshots of known call chains taken in-process, the
// modules described as the host describes them (capture::ScanModules ->
// ModuleMessage -> ModuleSet), unwound from the module FILES, checked by
// symbol (dladdr) and against unw_backtrace for the same point. Also: a
// plugin unloaded before the unwind, a process that exited before the
// unwind, build-id mismatches, hostile module messages and files.
#include "unwind/remote_unwinder.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "capture.h"
#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"

using stackstream::agent::ElfFileCache;
using stackstream::agent::kRegRbp;
using stackstream::agent::kRegRip;
using stackstream::agent::kRegRsp;
using stackstream::agent::kSnapshotRegs;
using stackstream::agent::LoadedModule;
using stackstream::agent::ModuleSet;
using stackstream::agent::RemoteUnwinder;
using stackstream::agent::StackSnapshot;
using stackstream::agent::testing::CapturedStack;
using stackstream::agent::testing::CaptureHere;
using stackstream::agent::testing::CopyOwnMemory;
using stackstream::agent::testing::FindModule;
using stackstream::agent::testing::RawMessages;
using stackstream::agent::testing::RegsFromUcontext;
using stackstream::agent::testing::ScanModules;
using stackstream::agent::testing::ScanModuleSet;
using stackstream::agent::testing::ScannedModule;
using stackstream::agent::testing::ThreadStackEnd;
namespace capture = stackstream::capture;

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

std::shared_ptr<const ModuleSet> ScanOrDie() {
  auto set = ScanModuleSet();
  EXPECT_NE(set, nullptr) << "the host's own module messages were rejected";
  return set;
}

bool CopyFile(const std::string& from, const std::string& to, size_t max_bytes = ~size_t{0}) {
  std::ifstream src(from, std::ios::binary);
  std::ofstream dst(to, std::ios::binary | std::ios::trunc);
  if (!src || !dst) return false;
  std::vector<char> buf(std::istreambuf_iterator<char>(src), {});
  if (buf.size() > max_bytes) buf.resize(max_bytes);
  dst.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  return static_cast<bool>(dst);
}

std::string TempDir(const char* name) {
  std::string dir = ::testing::TempDir() + "/" + name + "." + std::to_string(getpid());
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  EXPECT_EQ(0, system(cmd.c_str()));
  return dir;
}

TEST(RemoteUnwinderTest, KnownChainMatchesBacktrace) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  ASSERT_FALSE(cap.stack.empty());
  StackSnapshot snap = cap.Snapshot();
  auto set = ScanOrDie();
  ASSERT_NE(set, nullptr);

  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated = true;
  int n = unwinder.Unwind(*set, snap, pcs, 256, &truncated);
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
  int n2 = unwinder.Unwind(*set, snap, again, 256, &truncated);
  ASSERT_EQ(n2, n);
  EXPECT_EQ(0, memcmp(pcs, again, sizeof(uint64_t) * n));
  // Everything came from files: the main program and libc at least.
  EXPECT_GE(unwinder.files()->opens(), 2);
  EXPECT_GT(unwinder.files()->page_reads(), 0);
  EXPECT_EQ(unwinder.stats().modules_without_file, 0);
}

TEST(RemoteUnwinderTest, DeepRecursionTruncatedAtMaxDepth) {
  CapturedStack cap;
  unwind_test_recurse(&cap, 400);
  StackSnapshot snap = cap.Snapshot();
  auto set = ScanOrDie();
  RemoteUnwinder unwinder;
  std::vector<uint64_t> pcs(1024);
  bool truncated = false;
  int n = unwinder.Unwind(*set, snap, pcs.data(), 128, &truncated);
  EXPECT_EQ(n, 128);
  EXPECT_TRUE(truncated);
  for (int i = 2; i < n; ++i) ASSERT_EQ(SymbolOf(pcs[i]), "unwind_test_recurse") << i;

  // With room for everything: 401 recursion frames, then the test and main.
  n = unwinder.Unwind(*set, snap, pcs.data(), 1024, &truncated);
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
  int exact = unwinder.Unwind(*set, snap, pcs.data(), n, &t2);
  EXPECT_EQ(exact, n);
  EXPECT_FALSE(t2);
  exact = unwinder.Unwind(*set, snap, pcs.data(), n - 1, &t2);
  EXPECT_EQ(exact, n - 1);
  EXPECT_TRUE(t2);
}

TEST(RemoteUnwinderTest, ShortStackCopyStopsCleanly) {
  CapturedStack cap;
  unwind_test_recurse(&cap, 50);
  auto set = ScanOrDie();
  RemoteUnwinder unwinder;
  uint64_t full[256];
  bool truncated;
  int n_full = unwinder.Unwind(*set, cap.Snapshot(), full, 256, &truncated);
  ASSERT_GT(n_full, 50);
  for (size_t size : {size_t{0}, size_t{8}, size_t{100}, size_t{256}, size_t{1024}}) {
    StackSnapshot snap = cap.Snapshot();
    snap.stack_size = size;
    uint64_t pcs[256];
    int n = unwinder.Unwind(*set, snap, pcs, 256, &truncated);
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
  EXPECT_GE(unwinder.Unwind(*set, none, pcs, 8, &truncated), 1);
}

TEST(RemoteUnwinderTest, GarbageRegistersGiveAtMostOneFrame) {
  std::mt19937_64 rng(12345);
  std::vector<uint8_t> junk(4096);
  auto set = ScanOrDie();
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
    int n = unwinder.Unwind(*set, snap, pcs, 128, &truncated);
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
  EXPECT_EQ(unwinder.Unwind(*set, snap, pcs, 16, &truncated), 1);
}

TEST(RemoteUnwinderTest, ZeroMaxDepth) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  auto set = ScanOrDie();
  RemoteUnwinder unwinder;
  uint64_t pcs[1];
  bool truncated = false;
  EXPECT_EQ(unwinder.Unwind(*set, cap.Snapshot(), pcs, 0, &truncated), 0);
  EXPECT_EQ(unwinder.Unwind(*set, cap.Snapshot(), pcs, 1, &truncated), 1);
  EXPECT_TRUE(truncated);
}

TEST(RemoteUnwinderTest, EmptyModuleSetGivesTheLeafOnly) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  auto empty = ModuleSet::FromMessages({}, "");
  RemoteUnwinder unwinder;
  uint64_t pcs[64];
  bool truncated;
  int n = unwinder.Unwind(*empty, cap.Snapshot(), pcs, 64, &truncated);
  ASSERT_GE(n, 1);
  EXPECT_EQ(pcs[0], cap.regs[kRegRip]);
  EXPECT_LE(n, 2) << Dump(pcs, n);  // at most a frame-pointer guess, which needs known code
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
  auto set = ScanOrDie();
  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
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
  uint8_t stack[capture::kStackCopyBytes];
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
  RegsFromUcontext(uc, s->regs);
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

// Registers and the first words of the copied stack (for failure messages).
std::string DescribeStack(const StackSnapshot& snap) {
  char b[160];
  snprintf(b, sizeof b, "rsp %#lx rbp %#lx copy of %zu bytes\n",
           static_cast<unsigned long>(snap.regs[kRegRsp]),
           static_cast<unsigned long>(snap.regs[kRegRbp]), snap.stack_size);
  std::string out = b;
  for (size_t w = 0; w < 8 && (w + 1) * 8 <= snap.stack_size; ++w) {
    uint64_t v;
    memcpy(&v, snap.stack + w * 8, 8);
    snprintf(b, sizeof b, "  [rsp+%zu] %#lx %s\n", w * 8, static_cast<unsigned long>(v),
             SymbolOf(v).c_str());
    out += b;
  }
  return out;
}

#if defined(__SANITIZE_THREAD__)
constexpr bool kDeferredSignals = true;  // TSan runs handlers late: the copy is stale
#else
constexpr bool kDeferredSignals = false;
#endif

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
  auto set = ScanOrDie();

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
    int n = unwinder.Unwind(*set, snap, pcs, 128, &truncated);
    std::vector<std::string> syms = Symbols(pcs, n);
    int start = IndexOf(syms, "unwind_test_busy_thread");
    if (start >= 0) {
      ++reached;
      // Nothing but the thread's entry code above the start function.
      EXPECT_LE(n - start, 4) << Dump(pcs, n);
    } else if (first_bad.empty()) {
      first_bad = Dump(pcs, n) + DescribeStack(snap);
    }
    in_busy += IndexOf(syms, "unwind_test_busy_leaf") >= 0;
    usleep(500);
  }
  g_stop = true;
  pthread_join(th, nullptr);
  sigaction(sig, &old, nullptr);
  g_sample = nullptr;
  printf("signal samples: %d/%d reached thread start, %d in busy_leaf\n", reached, kSamples,
         in_busy);
  if (kDeferredSignals) {
    // TSan delivers the signal at its next safe point: the thread has moved
    // on and overwritten the stack the registers describe (the unwinds
    // above still ran, for the race detector). Before the split too.
    GTEST_SKIP() << "TSan defers signal handlers; stack copies do not match the registers";
  }
  EXPECT_GE(reached, kSamples * 95 / 100) << "first failure:\n" << first_bad;
  EXPECT_GT(in_busy, kSamples / 4);
}

// ---- the vDSO: no file, the agent's own image of it ----

std::atomic<bool> g_vdso_stop{false};
std::atomic<uint64_t> g_vdso_stack_end{0};

extern "C" __attribute__((noinline, visibility("default"))) void* unwind_test_vdso_thread(void*) {
  g_vdso_stack_end.store(ThreadStackEnd());
  struct timespec ts;
  while (!g_vdso_stop.load(std::memory_order_relaxed)) {
    clock_gettime(CLOCK_MONOTONIC, &ts);  // almost all of the time in the vDSO
    asm volatile("" ::: "memory");
  }
  return nullptr;
}

TEST(RemoteUnwinderTest, SamplesInTheVdsoUnwindThroughItsImage) {
  auto set = ScanOrDie();
  const LoadedModule* vdso = nullptr;
  for (const LoadedModule& m : set->modules()) {
    if (m.path == capture::kVdsoPath) vdso = &m;
  }
  ASSERT_NE(vdso, nullptr) << "the host reports its vDSO";
  EXPECT_FALSE(vdso->build_id.empty());

  std::unique_ptr<SignalSample> sample(new SignalSample());
  g_sample = sample.get();
  g_busy_stack_end.store(0);
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = &OnSample;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  const int sig = SIGRTMIN + 3;
  ASSERT_EQ(sigaction(sig, &sa, &old), 0);
  g_vdso_stop = false;
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, nullptr, &unwind_test_vdso_thread, nullptr), 0);
  while (g_vdso_stack_end.load() == 0) usleep(100);
  g_busy_stack_end.store(g_vdso_stack_end.load());  // OnSample copies up to here

  auto files = std::make_shared<ElfFileCache>();
  RemoteUnwinder unwinder(files);
  int in_vdso = 0, reached = 0;
  std::string first_bad;
  for (int i = 0; i < 200; ++i) {
    g_sample_ready.store(0);
    g_sample_request.fetch_add(1, std::memory_order_release);
    ASSERT_EQ(pthread_kill(th, sig), 0);
    while (g_sample_ready.load(std::memory_order_acquire) == 0) sched_yield();
    StackSnapshot snap;
    memcpy(snap.regs, sample->regs, sizeof(snap.regs));
    snap.stack_start = sample->stack_start;
    snap.stack = sample->stack;
    snap.stack_size = sample->stack_size;
    if (set->Find(snap.regs[kRegRip]) != vdso) continue;
    ++in_vdso;
    uint64_t pcs[64];
    bool truncated;
    int n = unwinder.Unwind(*set, snap, pcs, 64, &truncated);
    if (IndexOf(Symbols(pcs, n), "unwind_test_vdso_thread") > 0) {
      ++reached;
    } else if (first_bad.empty()) {
      first_bad = Dump(pcs, n);
    }
    usleep(200);
  }
  g_vdso_stop = true;
  pthread_join(th, nullptr);
  sigaction(sig, &old, nullptr);
  g_sample = nullptr;
  printf("vdso samples: %d in the vDSO, %d reached the thread function\n", in_vdso, reached);
  if (kDeferredSignals) GTEST_SKIP() << "TSan defers signal handlers";
  ASSERT_GT(in_vdso, 20);
  EXPECT_GE(reached, in_vdso * 9 / 10) << first_bad;
  EXPECT_EQ(files->build_id_mismatches(), 0);
  EXPECT_EQ(unwinder.stats().modules_without_file, 0);

  // A vDSO of another kernel (other build-id) is not ours.
  std::vector<ScannedModule> mods = ScanModules();
  ScannedModule* v = const_cast<ScannedModule*>(FindModule(mods, capture::kVdsoPath));
  ASSERT_NE(v, nullptr);
  v->message.build_id[0] ^= 0xff;
  LoadedModule other;
  ASSERT_TRUE(ModuleSet::ParseMessage(v->Raw().data(), v->Raw().size(), &other));
  EXPECT_EQ(files->Get(other, ""), nullptr);
  EXPECT_EQ(files->build_id_mismatches(), 1);
}

// ---- dlopen'd module: loaded, unloaded before the unwind ----

int CaptureThroughPlugin(void* handle, CapturedStack* cap) {
  using CallFn = int (*)(int (*)(void*), void*);
  auto call = reinterpret_cast<CallFn>(dlsym(handle, "unwind_test_plugin_call"));
  if (call == nullptr) return -1;
  return call(&unwind_test_capture_cb, cap);
}

// The plugin's frame (pcs[2]) lies in the plugin module of "set".
void ExpectPluginChain(const ModuleSet& set, const uint64_t* pcs, int n) {
  ASSERT_GE(n, 4) << Dump(pcs, n);
  EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb") << Dump(pcs, n);
  const LoadedModule* m = set.Find(pcs[2] - 1);
  ASSERT_NE(m, nullptr) << Dump(pcs, n);
  EXPECT_EQ(m->path, UNWIND_TEST_PLUGIN);
  std::vector<std::string> syms = Symbols(pcs, n);
  EXPECT_GT(IndexOf(syms, "main", 3), 2) << Dump(pcs, n);
}

TEST(RemoteUnwinderTest, PluginFramesResolveWhileLoaded) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  auto set = ScanOrDie();
  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  std::vector<std::string> syms = Symbols(pcs, n);
  EXPECT_EQ(syms[2], "unwind_test_plugin_call") << Dump(pcs, n);
  ExpectPluginChain(*set, pcs, n);
  std::vector<uint64_t> ours(pcs + 1, pcs + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs);
  dlclose(h);
}

TEST(RemoteUnwinderTest, PluginUnloadedBeforeUnwindStillUnwindsFromItsFile) {
  for (int variant = 0; variant < 2; ++variant) {
    auto files = std::make_shared<ElfFileCache>();
    RemoteUnwinder unwinder(files);
    void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    CapturedStack cap;
    ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
    auto with_plugin = ScanOrDie();  // what the host sent while it was loaded
    uint64_t pcs[256];
    bool truncated;
    if (variant == 1) {
      // Warm every cache with the plugin loaded, then unload it.
      unwinder.Unwind(*with_plugin, cap.Snapshot(), pcs, 256, &truncated);
    }
    ASSERT_EQ(dlclose(h), 0);
    ASSERT_EQ(dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_NOLOAD), nullptr) << "not unloaded";
    // Nothing of the plugin is mapped any more: the whole chain comes from files.
    int n = unwinder.Unwind(*with_plugin, cap.Snapshot(), pcs, 256, &truncated);
    ExpectPluginChain(*with_plugin, pcs, n);
    EXPECT_FALSE(truncated);
    std::vector<uint64_t> ours(pcs + 1, pcs + n);
    std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
    EXPECT_EQ(ours, theirs) << Dump(pcs, n);

    // The set of the next generation (plugin gone): the unwinder drops its
    // caches and does not crash on the stale snapshot.
    auto without = ScanOrDie();
    ASSERT_EQ(without->Find(pcs[2] - 1), nullptr);
    int64_t flushes = unwinder.stats().cache_flushes;
    n = unwinder.Unwind(*without, cap.Snapshot(), pcs, 256, &truncated);
    EXPECT_GE(n, 2);
    EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb");
    EXPECT_EQ(unwinder.stats().cache_flushes, flushes + 1);
  }
}

TEST(RemoteUnwinderTest, SetThatOnlyAddsModulesKeepsCaches) {
  auto before = ScanOrDie();
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  auto after = ScanOrDie();
  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  unwinder.Unwind(*before, cap.Snapshot(), pcs, 256, &truncated);
  int n = unwinder.Unwind(*after, cap.Snapshot(), pcs, 256, &truncated);
  ExpectPluginChain(*after, pcs, n);
  EXPECT_EQ(unwinder.stats().set_changes, 2);
  EXPECT_EQ(unwinder.stats().cache_flushes, 0);  // dlopen only added a module
  // The same set again: no change at all.
  unwinder.Unwind(*after, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_EQ(unwinder.stats().set_changes, 2);
  // Back to the older set (a sample from before the dlopen): flushed.
  unwinder.Unwind(*before, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_EQ(unwinder.stats().cache_flushes, 1);
  dlclose(h);
}

// ---- a process that exited before its stacks were unwound ----

// Child: loads the plugin, captures a stack through it, describes its
// modules, writes all of it to "fd" and exits. The parent unwinds afterwards.
void ChildCapturesAndExits(int fd) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) _exit(2);
  CapturedStack cap;
  if (CaptureThroughPlugin(h, &cap) < 0) _exit(3);
  std::vector<std::string> raw = RawMessages(ScanModules());
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  auto put_u64 = [&put](uint64_t v) { put(&v, 8); };
  put(cap.regs, sizeof cap.regs);
  put_u64(cap.stack_start);
  put_u64(cap.stack.size());
  put(cap.stack.data(), cap.stack.size());
  put_u64(cap.backtrace.size());
  put(cap.backtrace.data(), cap.backtrace.size() * 8);
  put_u64(raw.size());
  for (const std::string& r : raw) {
    put_u64(r.size());
    put(r.data(), r.size());
  }
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = write(fd, out.data() + off, out.size() - off);
    if (n <= 0) _exit(4);
    off += static_cast<size_t>(n);
  }
  _exit(0);
}

TEST(RemoteUnwinderTest, ExitedProcessIsUnwoundFromModuleFiles) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    ChildCapturesAndExits(fds[1]);
  }
  close(fds[1]);
  std::string in;
  char buf[65536];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) in.append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_EQ(kill(pid, 0), -1);  // gone: nothing can be read from it

  size_t off = 0;
  auto get = [&](void* p, size_t n) {
    if (off + n > in.size()) return false;
    memcpy(p, in.data() + off, n);
    off += n;
    return true;
  };
  CapturedStack cap;
  uint64_t size = 0, count = 0;
  ASSERT_TRUE(get(cap.regs, sizeof cap.regs));
  ASSERT_TRUE(get(&cap.stack_start, 8));
  ASSERT_TRUE(get(&size, 8));
  cap.stack.resize(size);
  ASSERT_TRUE(get(cap.stack.data(), size));
  ASSERT_TRUE(get(&count, 8));
  cap.backtrace.resize(count);
  ASSERT_TRUE(get(cap.backtrace.data(), count * 8));
  ASSERT_TRUE(get(&count, 8));
  std::vector<std::string> raw(count);
  for (std::string& m : raw) {
    ASSERT_TRUE(get(&size, 8));
    m.resize(size);
    ASSERT_TRUE(get(&m[0], size));
  }
  int rejected = -1;
  auto set = ModuleSet::FromMessages(raw, "", &rejected);
  EXPECT_EQ(rejected, 0);

  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  ASSERT_GE(n, 4);
  const LoadedModule* plugin = set->Find(pcs[2] - 1);
  ASSERT_NE(plugin, nullptr);
  EXPECT_EQ(plugin->path, UNWIND_TEST_PLUGIN);
  // The child's own unw_backtrace, taken in the same function.
  std::vector<uint64_t> ours(pcs + 1, pcs + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs);
}

// ---- files that are not the module's ----

TEST(RemoteUnwinderTest, BuildIdMismatchIsCountedAndTheFileUnused) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  std::vector<ScannedModule> mods = ScanModules();
  ScannedModule* plugin = const_cast<ScannedModule*>(FindModule(mods, UNWIND_TEST_PLUGIN));
  ASSERT_NE(plugin, nullptr);
  ASSERT_GT(plugin->message.build_id_size, 0u) << "the test plugin needs a build-id";
  plugin->message.build_id[0] ^= 0xff;  // the host says it ran another build
  auto set = ModuleSet::FromMessages(RawMessages(mods), "");
  auto files = std::make_shared<ElfFileCache>();
  RemoteUnwinder unwinder(files);
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_GE(n, 2) << Dump(pcs, n);
  EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb");
  EXPECT_EQ(files->build_id_mismatches(), 1);
  EXPECT_EQ(unwinder.stats().modules_without_file, 1);
  // Without its unwind tables the plugin frame is the end of the DWARF walk
  // (the frame-pointer guess may or may not get further: no claim).
  // A second unwind does not count the same file again.
  unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_EQ(files->build_id_mismatches(), 1);

  // The path names another ELF file with another build-id: same outcome.
  plugin->message.build_id[0] ^= 0xff;
  char exe[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", exe, sizeof exe - 1), 0);
  plugin->path = exe;
  plugin->message.dev = plugin->message.inode = 0;
  auto other = ModuleSet::FromMessages(RawMessages(mods), "");
  RemoteUnwinder unwinder2(files);
  n = unwinder2.Unwind(*other, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_GE(n, 2);
  EXPECT_EQ(files->build_id_mismatches(), 2);

  // The right build-id but another inode than the host saw: unusable too.
  mods = ScanModules();
  plugin = const_cast<ScannedModule*>(FindModule(mods, UNWIND_TEST_PLUGIN));
  plugin->message.inode ^= 1;
  auto moved = ModuleSet::FromMessages(RawMessages(mods), "");
  RemoteUnwinder unwinder3(files);
  unwinder3.Unwind(*moved, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_EQ(files->inode_mismatches(), 1);
  dlclose(h);
}

// ---- hostile module messages and files ----

TEST(RemoteUnwinderTest, MalformedMessagesAreRejectedAndCounted) {
  std::vector<ScannedModule> mods = ScanModules();
  ASSERT_FALSE(mods.empty());
  const ScannedModule good = mods[0];
  std::vector<std::string> bad;
  auto add = [&bad](std::string raw) { bad.push_back(std::move(raw)); };
  auto edited = [&good](auto fn) {
    ScannedModule m = good;
    fn(&m.message, &m.path);
    return m.Raw();
  };
  add("");
  add(std::string(10, 'x'));
  add(good.Raw().substr(0, sizeof(capture::ModuleMessage)));  // no path
  add(edited([](capture::ModuleMessage* m, std::string*) { m->header.magic ^= 1; }));
  add(edited([](capture::ModuleMessage* m, std::string*) { m->header.type = capture::kHello; }));
  add(edited([](capture::ModuleMessage* m, std::string*) { m->header.version += 1; }));
  add(edited([](capture::ModuleMessage* m, std::string*) {
    m->segment_count = capture::kMaxModuleSegments + 1;
  }));
  add(edited([](capture::ModuleMessage* m, std::string*) { m->segment_count = 0; }));
  add(edited([](capture::ModuleMessage* m, std::string*) { m->build_id_size = 1000; }));
  add(edited([](capture::ModuleMessage* m, std::string*) {
    m->segments[0].start = ~uint64_t{0} - 10;  // wraps
  }));
  add(edited([](capture::ModuleMessage* m, std::string*) {
    m->segments[0].file_size = m->segments[0].mem_size + 1;
  }));
  add(edited([](capture::ModuleMessage*, std::string* p) { *p = "relative/libfoo.so"; }));
  add(edited([](capture::ModuleMessage*, std::string* p) { *p = ""; }));
  add(edited([](capture::ModuleMessage*, std::string* p) { *p = "[vdso]x"; }));
  {
    std::string raw = good.Raw();  // header.size says more than there is
    capture::MessageHeader h;
    memcpy(&h, raw.data(), sizeof h);
    h.size += 8;
    memcpy(&raw[0], &h, sizeof h);
    add(raw);
  }
  {
    std::string raw = good.Raw();  // path not NUL-terminated
    raw.back() = 'x';
    add(raw);
  }
  {
    std::string raw = good.Raw();  // NUL inside the path
    raw[sizeof(capture::ModuleMessage) + 2] = '\0';
    add(raw);
  }
  {
    std::string raw = good.Raw();  // path_bytes larger than the message
    capture::ModuleMessage m;
    memcpy(&m, raw.data(), sizeof m);
    m.path_bytes = 100000;
    memcpy(&raw[0], &m, sizeof m);
    add(raw);
  }
  std::vector<std::string> all = bad;
  all.push_back(good.Raw());
  int rejected = -1;
  auto set = ModuleSet::FromMessages(all, "", &rejected);
  EXPECT_EQ(rejected, static_cast<int>(bad.size()));
  ASSERT_EQ(set->modules().size(), 1u);
  EXPECT_EQ(set->modules()[0].path, good.path);
}

TEST(RemoteUnwinderTest, FuzzedMessagesAndSnapshotsNeverCrash) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  std::vector<std::string> raw = RawMessages(ScanModules());
  std::mt19937_64 rng(777);
  auto files = std::make_shared<ElfFileCache>();
  RemoteUnwinder unwinder(files);
  int total_rejected = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<std::string> mutated = raw;
    for (std::string& m : mutated) {
      int flips = static_cast<int>(rng() % 4);
      for (int f = 0; f < flips && !m.empty(); ++f) {
        m[rng() % m.size()] = static_cast<char>(rng());
      }
      if (rng() % 16 == 0) m.resize(rng() % (m.size() + 1));
    }
    int rejected = 0;
    auto set = ModuleSet::FromMessages(mutated, "", &rejected);
    total_rejected += rejected;
    uint64_t pcs[256];
    bool truncated;
    int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
    ASSERT_GE(n, 1);
  }
  EXPECT_GT(total_rejected, 0);
}

TEST(RemoteUnwinderTest, MissingTruncatedAndSpecialFilesDoNotCrash) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  const std::vector<ScannedModule> scanned = ScanModules();
  const ScannedModule* plugin = FindModule(scanned, UNWIND_TEST_PLUGIN);
  ASSERT_NE(plugin, nullptr);
  std::string dir = TempDir("unwind_hostile");
  std::string fifo = dir + "/fifo.so";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string head = dir + "/head.so";  // the first 4 KiB: ELF header and build-id, no tables
  ASSERT_TRUE(CopyFile(UNWIND_TEST_PLUGIN, head, 4096));
  std::string empty = dir + "/empty.so";
  ASSERT_TRUE(CopyFile(UNWIND_TEST_PLUGIN, empty, 0));
  for (const std::string& path :
       {dir + "/does-not-exist.so", fifo, dir, std::string("/dev/zero"), head, empty,
        std::string("/proc/self/maps")}) {
    std::vector<ScannedModule> mods = scanned;
    for (ScannedModule& m : mods) {
      if (m.path == UNWIND_TEST_PLUGIN) {
        m.path = path;
        m.message.dev = m.message.inode = 0;
      }
    }
    auto set = ModuleSet::FromMessages(RawMessages(mods), "");
    RemoteUnwinder unwinder;
    uint64_t pcs[256];
    bool truncated;
    int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);  // must not block
    EXPECT_GE(n, 2) << path;
    EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb") << path;
    const int64_t failures = unwinder.files()->open_failures() +
                             unwinder.files()->build_id_mismatches();
    if (path == head) {
      EXPECT_EQ(failures, 0) << "a cut file with the right build-id opens; reads past its end fail";
    } else {
      EXPECT_EQ(failures, 1) << path;
    }
  }
  dlclose(h);
  system(("rm -rf '" + dir + "'").c_str());
}

TEST(RemoteUnwinderTest, FileTruncatedAfterOpenFailsReadsWithoutFaulting) {
  std::string dir = TempDir("unwind_truncate");
  std::string copy = dir + "/plugin-copy.so";
  ASSERT_TRUE(CopyFile(UNWIND_TEST_PLUGIN, copy));
  void* h = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  auto set = ScanOrDie();
  ASSERT_EQ(dlclose(h), 0);
  ElfFileCache::Options options;
  options.max_cached_bytes = 0;  // every read goes to the file
  auto files = std::make_shared<ElfFileCache>(options);
  RemoteUnwinder warm(files);
  uint64_t pcs[256];
  bool truncated;
  int full = warm.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  ASSERT_GT(full, 4) << Dump(pcs, full);
  // Cut the file (it stays open in the cache) to one page: what an mmap
  // would turn into SIGBUS must fail as a read.
  ASSERT_EQ(files->read_failures(), 0);
  ASSERT_EQ(truncate(copy.c_str(), 4096), 0);
  RemoteUnwinder cold(files);
  int n = cold.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_GE(n, 2);
  EXPECT_EQ(SymbolOf(pcs[1]), "unwind_test_capture_cb");
  EXPECT_GT(files->read_failures(), 0) << "no unwind tables left to read";
  // (Past the plugin's frame only a frame-pointer guess can go on.)
  ASSERT_EQ(truncate(copy.c_str(), 0), 0);
  RemoteUnwinder colder(files);
  EXPECT_GE(colder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated), 2);
  system(("rm -rf '" + dir + "'").c_str());
}

TEST(RemoteUnwinderTest, RootPrefixIsWhereFilesAreOpenedAndCannotBeLeft) {
  void* h = dlopen(UNWIND_TEST_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  CapturedStack cap;
  ASSERT_GE(CaptureThroughPlugin(h, &cap), 0);
  const std::vector<ScannedModule> scanned = ScanModules();
  dlclose(h);
  // A "container" root holding the plugin as /lib/plugin.so, and an absolute
  // symlink /lib/link.so -> /lib/plugin.so (resolved inside the root).
  std::string root = TempDir("unwind_root");
  ASSERT_EQ(mkdir((root + "/lib").c_str(), 0755), 0);
  ASSERT_TRUE(CopyFile(UNWIND_TEST_PLUGIN, root + "/lib/plugin.so"));
  ASSERT_EQ(symlink("/lib/plugin.so", (root + "/lib/link.so").c_str()), 0);
  struct stat st;
  ASSERT_EQ(stat((root + "/lib/plugin.so").c_str(), &st), 0);
  std::string escape = "/../../../../../../../.." + std::string(UNWIND_TEST_PLUGIN);

  for (const std::string& path : {std::string("/lib/plugin.so"), std::string("/lib/link.so"),
                                  escape}) {
    // Only the plugin lives in the root; the other modules are left out.
    std::vector<ScannedModule> mods;
    for (const ScannedModule& m : scanned) {
      if (m.path == UNWIND_TEST_PLUGIN) mods.push_back(m);
    }
    ASSERT_EQ(mods.size(), 1u);
    mods[0].path = path;
    mods[0].message.dev = path == escape ? 0 : st.st_dev;
    mods[0].message.inode = path == escape ? 0 : st.st_ino;
    auto set = ModuleSet::FromMessages(RawMessages(mods), root);
    auto files = std::make_shared<ElfFileCache>();
    std::shared_ptr<const stackstream::agent::ElfFile> f = files->Get(set->modules()[0], root);
    if (path == escape) {
      EXPECT_EQ(f, nullptr) << "'..' left the root";
    } else {
      ASSERT_NE(f, nullptr) << path;
      EXPECT_EQ(f->inode(), static_cast<uint64_t>(st.st_ino));
    }
  }
  system(("rm -rf '" + root + "'").c_str());
}

TEST(RemoteUnwinderTest, HostInAnotherRootIsUnwoundAfterItExits) {
  // The child's modules seen through /proc/CHILD/root, which vanishes when
  // the child exits: files opened (OpenAll) while it lived stay usable.
  CapturedStack cap;
  unwind_test_f1(&cap);
  int ready[2], quit[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(quit), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c = 1;
    if (write(ready[1], &c, 1) != 1 || read(quit[0], &c, 1) < 0) _exit(2);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  auto set = ModuleSet::FromMessages(RawMessages(ScanModules()), root);  // same modules: forked
  auto files = std::make_shared<ElfFileCache>();
  auto held = files->OpenAll(*set);
  EXPECT_EQ(held.size(), set->modules().size());
  ASSERT_EQ(write(quit[1], &c, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_NE(access((root + "/").c_str(), F_OK), 0) << "the root is gone with the process";
  RemoteUnwinder unwinder(files);
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  std::vector<uint64_t> ours(pcs + 1, pcs + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs) << Dump(pcs, n);
  EXPECT_EQ(unwinder.stats().modules_without_file, 0);
  // Without holding them, the files are not found any more.
  auto fresh = std::make_shared<ElfFileCache>();
  RemoteUnwinder late(fresh);
  n = late.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  EXPECT_GT(late.stats().modules_without_file, 0);
  for (int fd : {ready[0], ready[1], quit[0], quit[1]}) close(fd);
}

TEST(RemoteUnwinderTest, RootSlashUnwindsLikeNoRoot) {
  CapturedStack cap;
  unwind_test_f1(&cap);
  auto set = ScanModuleSet("/");  // every file opened with openat2(RESOLVE_IN_ROOT)
  ASSERT_NE(set, nullptr);
  RemoteUnwinder unwinder;
  uint64_t pcs[256];
  bool truncated;
  int n = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &truncated);
  std::vector<uint64_t> ours(pcs + 1, pcs + n);
  std::vector<uint64_t> theirs(cap.backtrace.begin() + 1, cap.backtrace.end());
  EXPECT_EQ(ours, theirs) << Dump(pcs, n);
  EXPECT_EQ(unwinder.stats().modules_without_file, 0);
}

TEST(ElfFileCacheTest, SharedByUnwindersOnSeveralThreads) {
  CapturedStack cap;
  unwind_test_recurse(&cap, 20);
  auto set = ScanOrDie();
  uint64_t expected[256];
  bool truncated;
  const int n = RemoteUnwinder().Unwind(*set, cap.Snapshot(), expected, 256, &truncated);
  ASSERT_GT(n, 20);
  ElfFileCache::Options options;
  options.max_files = 2;                                            // files come and go
  options.max_cached_bytes = 4 * sizeof(stackstream::agent::ElfPage);  // pages too
  auto files = std::make_shared<ElfFileCache>(options);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        RemoteUnwinder unwinder(files);  // a new client each time: cold caches
        uint64_t pcs[256];
        bool tr;
        int got = unwinder.Unwind(*set, cap.Snapshot(), pcs, 256, &tr);
        if (got != n || memcmp(pcs, expected, sizeof(uint64_t) * n) != 0) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(files->cached_bytes(), options.max_cached_bytes);
}

TEST(ElfFileCacheTest, SharedAcrossPathsBoundedAndReadsAreChecked) {
  const std::vector<ScannedModule> scanned = ScanModules();
  char exe[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", exe, sizeof exe - 1), 0);
  const ScannedModule* self = FindModule(scanned, exe);
  ASSERT_NE(self, nullptr);
  LoadedModule m;
  ASSERT_TRUE(ModuleSet::ParseMessage(self->Raw().data(), self->Raw().size(), &m));
  ElfFileCache::Options options;
  options.max_files = 2;
  options.max_cached_bytes = 8 * sizeof(stackstream::agent::ElfPage);
  ElfFileCache cache(options);
  auto a = cache.Get(m, "");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->build_id(), m.build_id);
  // The same file through another path (and root "/"): the same object.
  LoadedModule via_proc = m;
  via_proc.path = "/proc/self/exe";
  EXPECT_EQ(cache.Get(via_proc, "").get(), a.get());
  EXPECT_EQ(cache.Get(m, "/").get(), a.get());
  EXPECT_EQ(cache.open_files(), 1u);
  EXPECT_EQ(cache.opens(), 1);
  // Checked reads.
  uint8_t magic[4];
  ASSERT_TRUE(a->Read(0, magic, 4));
  EXPECT_EQ(0, memcmp(magic, "\x7f" "ELF", 4));
  uint8_t b[16];
  EXPECT_FALSE(a->Read(a->size() - 8, b, 16));
  EXPECT_FALSE(a->Read(~uint64_t{0} - 4, b, 8));
  EXPECT_TRUE(a->Read(a->size() - 8, b, 8));
  // The page cache stays within its bound.
  for (uint64_t off = 0; off < a->size(); off += 4096) a->Read(off, b, 1);
  EXPECT_LE(cache.cached_bytes(), options.max_cached_bytes);
  // Other files push the oldest out of the cache (it stays open while used).
  int opened = 0;
  for (const ScannedModule& s : scanned) {
    LoadedModule o;
    if (!ModuleSet::ParseMessage(s.Raw().data(), s.Raw().size(), &o)) continue;
    if (cache.Get(o, "") != nullptr) ++opened;
  }
  EXPECT_GE(opened, 3);
  EXPECT_LE(cache.open_files(), 2u);
  EXPECT_TRUE(a->Read(0, magic, 4));
}

}  // namespace
