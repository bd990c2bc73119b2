// Sampler: lifecycle, thread registration, the capture thread and the
// hand-off to stackstream-agent. Nothing here runs in the signal handler
// (see signal_handler.cc).
#include "capture/shared_memfd.h"
#include "capture/sampler.h"

#include "capture/otel_thread_context.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "capture/agent_link.h"
#include "capture/capture_format.h"
#include "capture/heap_sampler.h"
#include "capture/host_log.h"
#include "capture/module_scan.h"
#include "capture/sample_timer.h"
#include "capture/signal_handler.h"
#include "capture/thread_registry.h"
#include "capture/thread_scan.h"

extern char** environ;

namespace stackstream {
namespace agent {
namespace {

constexpr int64_t kLoopIntervalMs = 50;
constexpr int64_t kRescanIntervalNs = 200 * 1000000LL;
constexpr int64_t kMaskCheckIntervalNs = 1000 * 1000000LL;
constexpr int64_t kHandlerCheckIntervalNs = 1000 * 1000000LL;
constexpr int64_t kReconnectIntervalNs = 1000 * 1000000LL;
constexpr int64_t kRetireGraceNs = 0;
constexpr int kGoodbyeWaitMs = 1000;
constexpr int kSendRetryMs = 200;  // capture thread: wait for room in the socket
constexpr size_t kMaxThreadStates = 4096;
constexpr int kChildConnectDelayMs = 20;  // a forked child meets the agent after this

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// Initial-exec TLS: the library is preloaded, so it is in the static TLS block.
__thread bool t_agent_thread __attribute__((tls_model("initial-exec"))) = false;

pthread_key_t g_thread_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

// Ring size: ~300 ms of samples at the rate, so a slow agent (first
// symbolization of a big module) loses nothing.
uint32_t RingSlotsFor(const Config& config) {
  // Heap samples come in bursts with the allocation rate: the largest ring.
  if (config.profile_heap) return 64;
  int64_t want = static_cast<int64_t>(config.hz) * 300 / 1000;
  return static_cast<uint32_t>(std::clamp<int64_t>(want, 16, 64));
}

void BlockAsyncSignals() {
  sigset_t set;
  sigfillset(&set);
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// The STACKSTREAM_* variables of this process, as "K=V\0" strings: the
// agent reads its configuration from them (taken once, at start).
// A relative STACKSTREAM_OUTPUT is made absolute against this process's
// working directory (the agent runs elsewhere); the host's own environment
// is not changed.
std::string CaptureEnvironment() {
  std::string out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (strncmp(*e, "STACKSTREAM_", 12) != 0) continue;
    const char* kOutput = "STACKSTREAM_OUTPUT=";
    const size_t n = strlen(kOutput);
    if (strncmp(*e, kOutput, n) == 0 && (*e)[n] != '\0' && (*e)[n] != '/') {
      char cwd[4096];
      if (getcwd(cwd, sizeof cwd) != nullptr) {
        out.append(kOutput).append(cwd).append("/").append(*e + n);
        out.push_back('\0');
        continue;
      }
    }
    out.append(*e);
    out.push_back('\0');
  }
  return out;
}

std::string ExePath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

capture::MessageHeader Header(uint32_t type, size_t size) {
  capture::MessageHeader h;
  h.magic = capture::kMessageMagic;
  h.type = type;
  h.size = static_cast<uint32_t>(size);
  h.version = capture::kFormatVersion;
  return h;
}

struct KnownModule {
  uint64_t load_bias;
  std::string path;
  std::string message;  // the kModule message, path included
};

void ThreadKeyDestructor(void* value);

}  // namespace

class Sampler {
 public:
  explicit Sampler(const Config& config) : config_(config) {}

  // Full start (constructor or stackstream_start). False: inert.
  bool Start();
  // In a forked child: the parent's sampler "parent" is abandoned; the
  // forking thread (stack bounds from the parent's state) is registered by
  // the capture thread, which also connects and hands over.
  bool StartInChild(Sampler* parent);

  const Config& config() const { return config_; }
  void RegisterCurrentThread();
  void RegisterAgentThread();
  void UnregisterCurrentThread();
  void Shutdown();
  void RequestFlush();
  void SyncModulesFromCaller();
  void SetPaused(bool paused);
  void ForkPrepare();
  void ForkParent();
  bool HasOutput() const;
  // The host descriptor STACKSTREAM_OUTPUT names (/dev/stdout, /dev/fd/N...),
  // handed to the agent with the hello; -1 for a path.
  int OutputDescriptor() const;
  // In a forked child, before the new sampler starts: forget what belongs to
  // the parent (perf fds, the connection). REQUIRES the fork locks held by
  // this thread (taken in ForkPrepare).
  void AbandonInChild();

 private:
  static void* CaptureThreadMain(void* self);
  bool ChildInit();
  bool HasDataToHandOver();
  bool StartCaptureThread();
  void CaptureLoop();
  bool InitShared();
  bool Handshake();
  void SendNewRings(bool all);
  bool SyncModules(bool full);
  // Sends one message; when "may_wait" (capture thread only), waits up to
  // kSendRetryMs for room. Counts what could not be sent.
  bool SendMessage(const void* msg, size_t len, const int* fds, int nfds, bool may_wait);
  void Rescan(int64_t now, bool check_masks);
  void ArmLocked(ThreadState* ts, bool signal_blocked);
  void TurnOff(const char* why);
  void PublishCounters();
  bool SetUpClock();
  bool StartHeapTable();
  void SendHeapTable();

  const Config config_;
  int signo_ = -1;
  ClockSpec clock_spec_;
  ThreadRegistry* registry_ = nullptr;  // never destroyed
  std::set<pid_t> agent_tids_;          // guarded by registry mu
  AgentLink link_;
  capture::ControlBlock* control_ = nullptr;  // shared with the agent; never unmapped
  int control_fd_ = -1;
  int heap_fd_ = -1;  // the live-allocation table (heap profiling on), kept
  std::string env_;  // STACKSTREAM_* for the hello
  std::string exe_;
  int64_t start_ns_ = 0;

  // Modules: guarded by modules_mu_ (lock order: registry mu, modules mu, link mu).
  std::mutex modules_mu_;
  std::vector<KnownModule> modules_;
  uint64_t generation_ = 0;
  uint64_t loader_adds_ = ~uint64_t{0};
  uint64_t loader_subs_ = ~uint64_t{0};
  bool modules_dirty_ = false;  // a send failed: resend a full set

  // Capture thread control.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool loop_done_ = false;
  bool flush_requested_ = false;
  bool thread_running_ = false;
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> turned_off_{false};
  std::atomic<bool> connected_{false};

  // Child start: the forking thread to register from the capture thread.
  bool child_pending_ = false;
  bool child_ = false;           // started in a forked child
  bool ever_connected_ = false;  // set by the capture thread / Start
  pid_t fork_tid_ = 0;           // the thread inside fork() (set by ForkPrepare)
};

namespace {

std::atomic<Sampler*> g_sampler{nullptr};
std::atomic<bool> g_started{false};
std::atomic<bool> g_shutdown_done{false};

void ThreadKeyDestructor(void* value) {
  if (value == nullptr) return;
  Sampler* s = g_sampler.load(std::memory_order_acquire);
  if (s != nullptr) s->UnregisterCurrentThread();
}

void MakeKey() { pthread_key_create(&g_thread_key, ThreadKeyDestructor); }

struct StartArgs {
  void* (*start)(void*);
  void* arg;
  bool agent;
};

void* ThreadTrampoline(void* p) {
  StartArgs a = *static_cast<StartArgs*>(p);
  delete static_cast<StartArgs*>(p);
  Sampler* s = g_sampler.load(std::memory_order_acquire);
  if (a.agent) {
    t_agent_thread = true;
    if (s != nullptr) s->RegisterAgentThread();
  } else if (s != nullptr) {
    s->RegisterCurrentThread();
  }
  return a.start(a.arg);
}

PthreadCreateFn g_real_pthread_create = nullptr;

}  // namespace

PthreadCreateFn RealPthreadCreate() {
  if (g_real_pthread_create == nullptr) {
    g_real_pthread_create = reinterpret_cast<PthreadCreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
    if (g_real_pthread_create == nullptr) {
      g_real_pthread_create =
          reinterpret_cast<PthreadCreateFn>(dlsym(RTLD_DEFAULT, "pthread_create"));
    }
  }
  return g_real_pthread_create;
}

bool Sampler::InitShared() {
  start_ns_ = RealtimeNs();
  void* mem = nullptr;
  control_fd_ = capture::CreateSharedMemfd("stackstream-control", sizeof(capture::ControlBlock), &mem);
  if (control_fd_ < 0) {
    HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                "shared memory (memfd) failed (%s); profiling is off for this process",
                strerror(errno));
    return false;
  }
  control_ = new (mem) capture::ControlBlock;  // zero-filled memfd: counters start at 0
  control_->magic = capture::kControlMagic;
  control_->version = capture::kFormatVersion;
  control_->size = sizeof(capture::ControlBlock);
  control_->pid = static_cast<int32_t>(getpid());
  return true;
}

bool Sampler::SendMessage(const void* msg, size_t len, const int* fds, int nfds, bool may_wait) {
  int64_t deadline = MonoNs() + kSendRetryMs * 1000000LL;
  for (;;) {
    int err = link_.Send(msg, len, fds, nfds);
    if (err == 0) return true;
    if (err == EAGAIN && may_wait && MonoNs() < deadline) {
      timespec ts = {0, 2 * 1000000};
      nanosleep(&ts, nullptr);
      continue;
    }
    if (control_ != nullptr) control_->messages_dropped.fetch_add(1, std::memory_order_relaxed);
    if (err != EAGAIN) connected_.store(false, std::memory_order_release);
    return false;
  }
}

// Hello, every ring, a full module set. On the capture thread (or the
// constructor, before it exists).
bool Sampler::Handshake() {
  std::string exe = exe_;
  std::string msg(sizeof(capture::HelloMessage), '\0');
  capture::HelloMessage hello;
  memset(&hello, 0, sizeof hello);
  hello.pid = static_cast<int32_t>(getpid());
  hello.ppid = static_cast<int32_t>(getppid());
  hello.flags = capture::kHelloHasStderr |
                (OutputDescriptor() >= 0 ? capture::kHelloHasOutputFd : 0);
  hello.env_bytes = static_cast<uint32_t>(env_.size());
  hello.exe_bytes = static_cast<uint32_t>(exe.size() + 1);
  hello.start_time_ns = start_ns_;
  hello.control_bytes = sizeof(capture::ControlBlock);
  size_t total = sizeof hello + env_.size() + exe.size() + 1;
  if (total > capture::kMaxMessageBytes) {
    // Too many STACKSTREAM_* bytes: send none rather than a cut list.
    hello.env_bytes = 0;
    total = sizeof hello + exe.size() + 1;
    msg.clear();
  }
  hello.header = Header(capture::kHello, total);
  msg.assign(reinterpret_cast<const char*>(&hello), sizeof hello);
  if (hello.env_bytes != 0) msg.append(env_);
  msg.append(exe);
  msg.push_back('\0');
  int fds[3] = {control_fd_, 2, OutputDescriptor()};
  int nfds = fds[2] >= 0 ? 3 : 2;
  if (!SendMessage(msg.data(), msg.size(), fds, nfds, true)) return false;
  SendNewRings(true);
  SendHeapTable();
  return SyncModules(true);
}

void Sampler::SendNewRings(bool all) {
  std::vector<ThreadState*> rings;
  {
    std::lock_guard<std::mutex> lock(registry_->mu());
    std::vector<ThreadState*> fresh = registry_->TakeNewRings();
    rings = all ? registry_->AllRingsLocked() : fresh;
  }
  for (ThreadState* ts : rings) {
    capture::RingMessage m;
    memset(&m, 0, sizeof m);
    m.header = Header(capture::kRing, sizeof m);
    m.ring_id = ts->ring_id;
    m.bytes = capture::RingBytes(ts->ring.capacity(), ts->ring.header()->slot_bytes);
    int fd = ts->ring_fd;
    if (!SendMessage(&m, sizeof m, &fd, 1, !t_agent_thread ? false : true)) break;
  }
}

namespace {
struct ScanOut {
  std::vector<KnownModule>* out;
};
void CollectModule(const capture::ModuleMessage& m, const char* path, void* arg) {
  auto* out = static_cast<ScanOut*>(arg)->out;
  KnownModule k;
  k.load_bias = m.load_bias;
  k.path = path;
  k.message.assign(reinterpret_cast<const char*>(&m), sizeof m);
  k.message.append(path);
  k.message.push_back('\0');
  out->push_back(std::move(k));
}
}  // namespace

bool Sampler::SyncModules(bool full) {
  // Never wait for room in the socket while holding modules_mu_ (fork()
  // takes it): a message that does not fit marks the set dirty, and the next
  // round sends a full set.
  std::lock_guard<std::mutex> lock(modules_mu_);
  uint64_t adds = 0, subs = 0;
  capture::LoaderCounters(&adds, &subs);
  if (modules_dirty_) full = true;
  if (!full && adds == loader_adds_ && subs == loader_subs_) return true;
  uint64_t gen = generation_ + 1;
  std::vector<KnownModule> now;
  ScanOut out{&now};
  capture::ScanModules(gen, &CollectModule, &out);
  auto same = [](const KnownModule& a, const KnownModule& b) {
    return a.load_bias == b.load_bias && a.path == b.path;
  };
  bool ok = true;
  for (const KnownModule& m : now) {
    bool known = !full && std::any_of(modules_.begin(), modules_.end(),
                                      [&](const KnownModule& o) { return same(o, m); });
    if (known) continue;
    ok = ok && SendMessage(m.message.data(), m.message.size(), nullptr, 0, false);
  }
  if (!full) {
    for (const KnownModule& o : modules_) {
      if (std::any_of(now.begin(), now.end(), [&](const KnownModule& m) { return same(o, m); })) {
        continue;
      }
      std::string gone = o.message;
      auto* gm = reinterpret_cast<capture::ModuleMessage*>(&gone[0]);
      gm->header.type = capture::kModuleGone;
      gm->generation = gen;
      ok = ok && SendMessage(gone.data(), gone.size(), nullptr, 0, false);
    }
  }
  capture::ModulesEndMessage end;
  memset(&end, 0, sizeof end);
  end.header = Header(capture::kModulesEnd, sizeof end);
  end.generation = gen;
  end.module_count = static_cast<uint32_t>(now.size());
  end.flags = full ? capture::kModulesEndFull : 0;
  ok = ok && SendMessage(&end, sizeof end, nullptr, 0, false);
  modules_.swap(now);
  generation_ = gen;
  loader_adds_ = adds;
  loader_subs_ = subs;
  modules_dirty_ = !ok;
  if (ok) SetModuleGeneration(gen);
  return ok;
}

bool Sampler::StartHeapTable() {
  if (!config_.profile_heap) return true;
  heap_fd_ = heap::Start(config_.heap_rate);
  if (heap_fd_ < 0) {
    HostLogOnce(kLogKeyRingFailed, HostLogLevel::kWarn,
                "cannot create the heap profiling table (memfd/mmap failed); heap profiling "
                "is off for this process");
    return false;
  }
  return true;
}

void Sampler::SendHeapTable() {
  if (heap_fd_ < 0) return;
  capture::HeapTableMessage m;
  memset(&m, 0, sizeof m);
  m.header = Header(capture::kHeapTable, sizeof m);
  heap::TableGeometry(&m.slots, &m.filter_slots, &m.bytes);
  int fd = heap_fd_;
  SendMessage(&m, sizeof m, &fd, 1, t_agent_thread);
}

bool Sampler::SetUpClock() {
  signo_ = PickSampleSignal();
  if (signo_ < 0 || !InstallSampleHandler(signo_)) {
    HostLogOnce(kLogKeyNoSignal, HostLogLevel::kWarn,
                "no free real-time signal for sampling; profiling is off");
    return false;
  }
  clock_spec_.signo = signo_;
  clock_spec_.period_ns = config_.period_nanos();
  clock_spec_.wall = config_.mode == Mode::kWall;
  if (!clock_spec_.wall) {
    if (config_.cpu_clock == "timer") {
      clock_spec_.use_perf = false;
    } else {
      clock_spec_.use_perf = PerfTaskClockAvailable();
      if (!clock_spec_.use_perf && config_.cpu_clock == "perf") {
        HostLog(HostLogLevel::kWarn,
                "STACKSTREAM_CPU_CLOCK=perf but perf_event_open is not permitted; "
                "using per-thread CPU timers");
      }
    }
  }
  return true;
}

bool Sampler::Start() {
  pthread_once(&g_key_once, MakeKey);
  env_ = CaptureEnvironment();
  exe_ = ExePath();
  if (!InitShared()) return false;
  registry_ = new ThreadRegistry(RingSlotsFor(config_), kStackCopyBytes);
  if (!link_.Connect(config_.agent_socket, true)) {
    HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                "cannot reach or start stackstream-agent; profiling is off for this process");
    return false;
  }
  HostLog(HostLogLevel::kDebug, "connected to stackstream-agent (%s)", link_.description().c_str());
  if (!SetUpClock()) return false;
  StartHeapTable();
  if (!Handshake()) {
    HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                "stackstream-agent did not take the hand-off; profiling is off for this process");
    return false;
  }
  connected_.store(true, std::memory_order_release);
  ever_connected_ = true;
  SetSamplingEnabled(true);
  RegisterCurrentThread();
  if (heap_fd_ >= 0) heap::Enable();
  Rescan(MonoNs(), false);  // threads that already exist (e.g. started late)
  if (!StartCaptureThread()) {
    TurnOff("cannot start the capture thread");
    return false;
  }
  HostLog(HostLogLevel::kInfo, "sampling %s mode at %d Hz with %s on signal %d",
          clock_spec_.wall ? "wall" : "cpu", config_.hz,
          clock_spec_.wall ? "wall-clock timers"
                           : (clock_spec_.use_perf ? "perf task-clock" : "CPU timers"),
          signo_);
  return true;
}

bool Sampler::StartInChild(Sampler* parent) {
  env_ = parent->env_;
  exe_ = parent->exe_;
  signo_ = parent->signo_;
  clock_spec_ = parent->clock_spec_;
  generation_ = parent->generation_;  // samples keep the parent's stamp until the first set
  link_.InheritAddress(parent->link_);
  // The forking thread is the child's only thread; its tid is the new pid.
  // Its stack bounds come from the parent's state for the forking thread.
  pid_t parent_tid = parent->fork_tid_;
  uint64_t lo = 0, hi = 0;
  for (ThreadState* ts : parent->registry_->SnapshotLocked()) {
    if (!ts->retired && ts->tid.load(std::memory_order_relaxed) == parent_tid) {
      lo = ts->stack_lo.load(std::memory_order_relaxed);
      hi = ts->stack_hi.load(std::memory_order_relaxed);
    }
  }
  pid_t tid = static_cast<pid_t>(getpid());
  // Programs commonly block signals around fork() (PostgreSQL's postmaster
  // does) and unblock them at once in the child: keep the precise perf clock
  // (a CPU timer only fires on the scheduler tick, and loses ~40% of a 5 ms
  // child); being one-shot, it cannot pile signals up while blocked. A child
  // that keeps our signal blocked is switched to a timer by the capture
  // thread's mask check.
  pthread_setspecific(g_thread_key, reinterpret_cast<void*>(1));
  // Sampling starts before fork() returns (a short-lived child is profiled
  // from its first instruction): a ring and a clock, nothing more. Meeting
  // the agent waits (see ChildInit), and a child that exits before that
  // connects only if it has something to hand over.
  if (!InitShared()) return false;
  registry_ = new ThreadRegistry(RingSlotsFor(config_), kStackCopyBytes);
  StartHeapTable();
  {
    std::lock_guard<std::mutex> lock(registry_->mu());
    ThreadState* ts = registry_->Acquire(tid);
    if (ts == nullptr) {
      control_->rings_failed.fetch_add(1, std::memory_order_relaxed);
    } else {
      ts->stack_lo.store(lo, std::memory_order_relaxed);
      ts->stack_hi.store(hi, std::memory_order_relaxed);
      ts->active.store(true, std::memory_order_release);
      ArmLocked(ts, false);
      heap::SetCurrentThread(ts);
    }
  }
  SetSamplingEnabled(true);
  if (heap_fd_ >= 0) heap::Enable();
  child_pending_ = true;
  child_ = true;
  return StartCaptureThread();
}

// A forked child meets the agent on its capture thread, after a short delay:
// children that exec or exit at once (shells, fork-exec, short workers) never
// open a connection unless they took samples (see Shutdown).
bool Sampler::ChildInit() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(kChildConnectDelayMs),
                 [this] { return stop_requested_; });
    if (stop_requested_) return false;
  }
  if (!link_.Reconnect(config_.agent_socket, true) || !Handshake()) {
    HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                "cannot reach stackstream-agent from a forked child; profiling is off for it");
    return false;
  }
  connected_.store(true, std::memory_order_release);
  ever_connected_ = true;
  return true;
}

bool Sampler::HasDataToHandOver() {
  if (control_ == nullptr || registry_ == nullptr) return false;
  if (control_->timers_failed.load() != 0 || control_->rings_failed.load() != 0) return true;
  std::lock_guard<std::mutex> lock(registry_->mu());
  for (ThreadState* ts : registry_->AllRingsLocked()) {
    capture::RingHeader* h = ts->ring.header();
    if (!ts->ring.Empty() || h->dropped_ring_full.load() != 0 || h->dropped_bad_stack.load() != 0) {
      return true;
    }
  }
  return false;
}

bool Sampler::StartCaptureThread() {
  PthreadCreateFn create = RealPthreadCreate();
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  sigset_t old;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);  // the capture thread starts with all blocked
  {
    std::lock_guard<std::mutex> lock(mu_);
    thread_running_ = true;
  }
  int rc = create != nullptr ? create(&th, &attr, &Sampler::CaptureThreadMain, this) : -1;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    thread_running_ = false;
    loop_done_ = true;
  }
  return rc == 0;
}

void Sampler::ArmLocked(ThreadState* ts, bool signal_blocked) {
  if (!config_.profile_cpu) return;  // STACKSTREAM_PROFILES=heap: rings, no clocks
  ClockSpec spec = clock_spec_;
  // A thread that blocks our signal would queue one perf signal per period.
  if (signal_blocked) spec.use_perf = false;
  int err = 0;
  if (!ArmThreadClock(ts, spec, &err)) {
    control_->timers_failed.fetch_add(1, std::memory_order_relaxed);
    HostLogOnce(kLogKeyTimerFailed, HostLogLevel::kWarn,
                "cannot create a sampling timer for thread %d: %s (thread not sampled; "
                "counted as timers_failed)",
                ts->tid.load(), strerror(err));
    registry_->Retire(ts, MonoNs());
  }
}

void Sampler::RegisterCurrentThread() {
  if (turned_off_.load() || shutting_down_.load() || registry_ == nullptr) return;
  BindOtelThreadContext();  // before the thread's clock is armed
  pid_t tid = CurrentTid();
  uint64_t lo = 0, hi = 0;
  CurrentThreadStackBounds(&lo, &hi);
  bool blocked = CurrentThreadBlocksSignal(signo_);
  pthread_setspecific(g_thread_key, reinterpret_cast<void*>(1));
  std::lock_guard<std::mutex> lock(registry_->mu());
  ThreadState* ts = registry_->FindLive(tid);
  if (ts != nullptr) {  // already found by a scan
    ts->stack_lo.store(lo, std::memory_order_relaxed);
    ts->stack_hi.store(hi, std::memory_order_release);
    ts->foreign = false;
    heap::SetCurrentThread(ts);
    return;
  }
  ts = registry_->SnapshotLocked().size() < kMaxThreadStates ? registry_->Acquire(tid) : nullptr;
  if (ts == nullptr) {
    control_->rings_failed.fetch_add(1, std::memory_order_relaxed);
    HostLogOnce(kLogKeyRingFailed, HostLogLevel::kWarn,
                "no sample ring for thread %d (memfd/mmap failed or too many threads); "
                "the thread is not sampled (counted)",
                tid);
    return;
  }
  ts->stack_lo.store(lo, std::memory_order_relaxed);
  ts->stack_hi.store(hi, std::memory_order_relaxed);
  ts->active.store(true, std::memory_order_release);
  ArmLocked(ts, blocked);
  heap::SetCurrentThread(ts);
}

void Sampler::RegisterAgentThread() {
  pthread_setspecific(g_thread_key, reinterpret_cast<void*>(2));
  pid_t tid = CurrentTid();
  if (registry_ == nullptr) return;
  std::lock_guard<std::mutex> lock(registry_->mu());
  agent_tids_.insert(tid);
  if (ThreadState* ts = registry_->FindLive(tid)) {  // a scan got there first
    DisarmThreadClock(ts);
    registry_->Retire(ts, MonoNs());
  }
}

void Sampler::UnregisterCurrentThread() {
  heap::SetCurrentThread(nullptr);
  pid_t tid = CurrentTid();
  if (registry_ == nullptr) return;
  std::lock_guard<std::mutex> lock(registry_->mu());
  agent_tids_.erase(tid);
  if (ThreadState* ts = registry_->FindLive(tid)) {
    ts->active.store(false, std::memory_order_release);
    DisarmThreadClock(ts);
    registry_->RetireAndRecycleIfEmpty(ts, MonoNs());
  }
}

void Sampler::Rescan(int64_t now, bool check_masks) {
  std::vector<pid_t> tids = ListThreadIds();
  if (tids.empty()) return;
  std::sort(tids.begin(), tids.end());
  std::lock_guard<std::mutex> lock(registry_->mu());
  for (ThreadState* ts : registry_->SnapshotLocked()) {
    if (ts->retired) continue;
    pid_t tid = ts->tid.load(std::memory_order_relaxed);
    if (!std::binary_search(tids.begin(), tids.end(), tid)) {
      // Gone without telling us (raw clone, or exited before its destructor).
      DisarmThreadClock(ts);
      registry_->Retire(ts, now);
      continue;
    }
    uint64_t probe = ts->probe_sp.load(std::memory_order_relaxed);
    if (ts->stack_hi.load(std::memory_order_relaxed) == 0 && probe != 0) {
      uint64_t lo = 0, hi = 0;
      if (FindMappingContaining(probe, &lo, &hi)) {
        ts->stack_lo.store(lo, std::memory_order_relaxed);
        ts->stack_hi.store(hi, std::memory_order_release);
      }
      ts->probe_sp.store(0, std::memory_order_relaxed);
    }
    if (check_masks && ts->clock == ClockKind::kPerfTaskClock) {
      bool blocked = false;
      if (ThreadBlocksSignal(tid, signo_, &blocked) && blocked) {
        int err = 0;
        if (!SwitchToPosixTimer(ts, clock_spec_, &err)) {
          control_->timers_failed.fetch_add(1, std::memory_order_relaxed);
          registry_->Retire(ts, now);
        }
      }
    }
  }
  registry_->Recycle(now, kRetireGraceNs);
  if (turned_off_.load() || shutting_down_.load()) return;
  for (pid_t tid : tids) {
    if (agent_tids_.count(tid) != 0 || registry_->FindLive(tid) != nullptr) continue;
    ThreadState* ts =
        registry_->SnapshotLocked().size() < kMaxThreadStates ? registry_->Acquire(tid) : nullptr;
    if (ts == nullptr) {
      control_->rings_failed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ts->foreign = true;
    ts->active.store(true, std::memory_order_release);
    bool blocked = false;
    ThreadBlocksSignal(tid, signo_, &blocked);
    ArmLocked(ts, blocked);
  }
}

void* Sampler::CaptureThreadMain(void* self) {
  t_agent_thread = true;
  pthread_setname_np(pthread_self(), "ss-capture");  // tells users (top -H) what it is
  auto* s = static_cast<Sampler*>(self);
  BlockAsyncSignals();
  s->CaptureLoop();
  return nullptr;
}

void Sampler::PublishCounters() {
  control_->foreign_signals.store(ForeignSignalCount(), std::memory_order_relaxed);
}

void Sampler::TurnOff(const char* why) {
  if (turned_off_.exchange(true)) return;
  SetSamplingEnabled(false);
  if (registry_ != nullptr) {
    std::lock_guard<std::mutex> lock(registry_->mu());
    for (ThreadState* ts : registry_->SnapshotLocked()) {
      if (ts->retired) continue;
      DisarmThreadClock(ts);
      registry_->Retire(ts, MonoNs());
    }
  }
  HostLogOnce(kLogKeyHandlerReplaced, HostLogLevel::kError, "sampling turned off: %s", why);
}

void Sampler::CaptureLoop() {
  if (child_pending_) {
    child_pending_ = false;
    if (!ChildInit()) {
      // Stopped before connecting (exit: Shutdown hands over what there is),
      // or no agent: sampling goes on into the ring, nobody drains it.
      std::lock_guard<std::mutex> lock(mu_);
      loop_done_ = true;
      cv_.notify_all();
      return;
    }
  }
  RegisterAgentThread();
  int64_t now = MonoNs();
  int64_t next_scan = now + kRescanIntervalNs;
  int64_t next_mask_check = now + kMaskCheckIntervalNs;
  int64_t next_handler_check = now + kHandlerCheckIntervalNs;
  int64_t next_reconnect = 0;
  for (;;) {
    bool stop = false, flush = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(kLoopIntervalMs),
                   [this] { return stop_requested_ || flush_requested_; });
      stop = stop_requested_;
      flush = flush_requested_;
      flush_requested_ = false;
    }
    if (stop) break;
    now = MonoNs();
    if (connected_.load(std::memory_order_acquire) && link_.PeerClosed()) {
      connected_.store(false, std::memory_order_release);
      HostLogOnce(kLogKeyReconnect, HostLogLevel::kWarn,
                  "lost stackstream-agent; samples are kept in the rings while reconnecting");
    }
    if (!connected_.load(std::memory_order_acquire) && now >= next_reconnect) {
      next_reconnect = now + kReconnectIntervalNs;
      // Counted before the hand-off, so the new agent sees it at hello.
      if (link_.Reconnect(config_.agent_socket, true) &&
          (control_->reconnects.fetch_add(1, std::memory_order_relaxed), Handshake())) {
        connected_.store(true, std::memory_order_release);
        ever_connected_ = true;
        HostLog(HostLogLevel::kInfo, "reconnected to stackstream-agent (%s)",
                link_.description().c_str());
      }
    }
    if (connected_.load(std::memory_order_acquire)) {
      SendNewRings(false);
      SyncModules(false);
      if (flush) {
        capture::SimpleMessage m;
        m.header = Header(capture::kFlush, sizeof m);
        SendMessage(&m, sizeof m, nullptr, 0, true);
      }
    }
    PublishCounters();
    if (now >= next_handler_check) {
      next_handler_check = now + kHandlerCheckIntervalNs;
      if (!turned_off_.load() && !HandlerIsInstalled(signo_)) {
        TurnOff("the program installed its own handler for the sampling signal");
      }
    }
    if (now >= next_scan && !turned_off_.load()) {
      bool masks = now >= next_mask_check;
      if (masks) next_mask_check = now + kMaskCheckIntervalNs;
      Rescan(now, masks && clock_spec_.use_perf);
      next_scan = now + kRescanIntervalNs;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  loop_done_ = true;
  cv_.notify_all();
}

void Sampler::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  SetSamplingEnabled(false);
  heap::Stop();
  if (registry_ != nullptr) {
    std::lock_guard<std::mutex> lock(registry_->mu());
    for (ThreadState* ts : registry_->SnapshotLocked()) {
      if (!ts->retired) DisarmThreadClock(ts);
    }
  }
  if (t_agent_thread) return;  // exit() on the capture thread: nothing to wait for
  {
    // Stop the capture thread (bounded: it never blocks for long).
    std::unique_lock<std::mutex> lock(mu_);
    stop_requested_ = true;
    cv_.notify_all();
    if (thread_running_) {
      cv_.wait_for(lock, std::chrono::milliseconds(300), [this] { return loop_done_; });
    }
    if (!loop_done_) return;  // still busy: leave the rest to EOF on the socket
  }
  // A forked child that exits before it met the agent: hand over only if it
  // took samples (or lost some).
  if (!connected_.load(std::memory_order_acquire) && child_ && !ever_connected_ &&
      HasDataToHandOver()) {
    bool linked = link_.Reconnect(config_.agent_socket, true);
    bool handed = linked && Handshake();
    HostLog(HostLogLevel::kDebug, "exit before meeting the agent: connect %s, hand-over %s",
            linked ? "ok" : "failed", handed ? "ok" : "failed");
    if (handed) {
      connected_.store(true, std::memory_order_release);
      ever_connected_ = true;
    }
  }
  if (!connected_.load(std::memory_order_acquire) || control_ == nullptr) return;
  // Rings and modules that appeared since the last round, then goodbye.
  SendNewRings(false);
  SyncModules(false);
  PublishCounters();
  capture::SimpleMessage bye;
  bye.header = Header(capture::kGoodbye, sizeof bye);
  if (!SendMessage(&bye, sizeof bye, nullptr, 0, false)) return;
  // The offline file must be complete when exit returns (bounded wait);
  // the network part is the agent's business after we are gone.
  if (HasOutput()) link_.WaitFor(capture::kGoodbyeDone, kGoodbyeWaitMs);
}

namespace {

// The descriptor a path names when it is one of this process's descriptor
// links (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N,
// /proc/PID/fd/N), else -1.
int DescriptorNamed(const std::string& path) {
  if (path == "/dev/stdout") return 1;
  if (path == "/dev/stderr") return 2;
  std::string own = "/proc/" + std::to_string(getpid()) + "/fd/";
  for (const std::string& prefix : {std::string("/dev/fd/"), std::string("/proc/self/fd/"), own}) {
    if (path.compare(0, prefix.size(), prefix) != 0) continue;
    const char* digits = path.c_str() + prefix.size();
    char* end = nullptr;
    long fd = strtol(digits, &end, 10);
    if (end != digits && *end == '\0' && fd >= 0 && fd < (1 << 20)) return static_cast<int>(fd);
  }
  return -1;
}

}  // namespace

int Sampler::OutputDescriptor() const {
  const char* out = nullptr;
  for (size_t i = 0; i < env_.size();) {
    const char* kv = env_.c_str() + i;
    if (strncmp(kv, "STACKSTREAM_OUTPUT=", 19) == 0) out = kv + 19;
    i += strlen(kv) + 1;
  }
  if (out == nullptr || out[0] == '\0') return -1;
  // Follow a chain of symbolic links (at most 8) to see whether it ends at
  // one of our descriptors: those names mean the host's, not the agent's.
  std::string path = out;
  for (int hop = 0; hop < 8; ++hop) {
    int fd = DescriptorNamed(path);
    if (fd >= 0) return fcntl(fd, F_GETFD) >= 0 ? fd : -1;
    char buf[4096];
    ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
    if (n <= 0) return -1;
    std::string target(buf, static_cast<size_t>(n));
    if (target[0] != '/') {
      size_t slash = path.rfind('/');
      target = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/" + target;
    }
    path = target;
  }
  return -1;
}

bool Sampler::HasOutput() const {
  for (size_t i = 0; i < env_.size();) {
    const char* kv = env_.c_str() + i;
    if (strncmp(kv, "STACKSTREAM_OUTPUT=", 19) == 0 && kv[19] != '\0') return true;
    i += strlen(kv) + 1;
  }
  return false;
}

void Sampler::RequestFlush() {
  std::lock_guard<std::mutex> lock(mu_);
  flush_requested_ = true;
  cv_.notify_all();
}

void Sampler::SyncModulesFromCaller() {
  if (t_agent_thread || shutting_down_.load() || !connected_.load(std::memory_order_acquire)) {
    return;
  }
  SyncModules(false);
}

void Sampler::SetPaused(bool paused) {
  if (turned_off_.load() || shutting_down_.load()) return;
  SetSamplingEnabled(!paused);
}

void Sampler::ForkPrepare() {
  fork_tid_ = CurrentTid();
  if (registry_ != nullptr) registry_->mu().lock();
  modules_mu_.lock();
  link_.mu().lock();
}

void Sampler::ForkParent() {
  link_.mu().unlock();
  modules_mu_.unlock();
  if (registry_ != nullptr) registry_->mu().unlock();
}

void Sampler::AbandonInChild() {
  SetSamplingEnabled(false);
  if (registry_ != nullptr) {
    for (ThreadState* ts : registry_->SnapshotLocked()) ForgetInheritedClock(ts);
  }
  ClearPerfFdTable();
  link_.Close();  // the parent's connection
  // This thread took these in ForkPrepare; the parent's sampler is never used
  // again, but keep its mutexes unlocked for tidiness.
  link_.mu().unlock();
  modules_mu_.unlock();
}

// ---- free functions ----

Sampler* CurrentSampler() { return g_sampler.load(std::memory_order_acquire); }

bool IsAgentThread() { return t_agent_thread; }

namespace {

Config ReadHostConfig() {
  Config config = ReadConfigFromEnv(static_cast<int>(getpid()));
  return config;
}

}  // namespace

void StartAgent() {
  if (g_started.exchange(true)) return;
  Config config = ReadHostConfig();
  InitHostLog(config.log_level.c_str(), config.log_file.c_str());
  for (const std::string& w : config.warnings) {
    HostLog(HostLogLevel::kWarn, "%s", w.c_str());
  }
  if (config.disabled) return;
  // Never profile stackstream-agent itself (a helper, or a daemon started
  // from a shell that has LD_PRELOAD set).
  if (getenv("STACKSTREAM_HELPER") != nullptr) return;
  std::string exe = ExePath();
  if (exe.size() >= 18 && exe.compare(exe.size() - 18, 18, "/stackstream-agent") == 0) return;
  auto* s = new Sampler(config);  // never destroyed
  g_sampler.store(s, std::memory_order_release);
  if (!s->Start()) g_sampler.store(nullptr, std::memory_order_release);
}

void ShutdownAgent() {
  if (g_shutdown_done.exchange(true)) return;
  if (Sampler* s = CurrentSampler()) s->Shutdown();
}

void SetAgentPaused(bool paused) {
  if (Sampler* s = CurrentSampler()) s->SetPaused(paused);
}

void RequestFlush() {
  if (Sampler* s = CurrentSampler()) s->RequestFlush();
}

void SyncModulesBeforeUnload() {
  if (Sampler* s = CurrentSampler()) s->SyncModulesFromCaller();
}

void AgentForkPrepare() {
  if (Sampler* s = CurrentSampler()) s->ForkPrepare();
}

void AgentForkParent() {
  if (Sampler* s = CurrentSampler()) s->ForkParent();
}

void AgentForkChild() {
  // First: the parent's heap table is shared memory, and this thread's
  // ring is the parent's.
  heap::ForgetInChild();
  Sampler* old = CurrentSampler();
  if (old == nullptr) return;  // disabled or failed in the parent: stay so
  // The parent's sampler is abandoned (its registry mutex stays locked, its
  // capture thread does not exist here); a new one starts for this process.
  old->AbandonInChild();
  g_sampler.store(nullptr, std::memory_order_release);
  if (g_shutdown_done.load()) return;       // forked during exit
  // The parent's settings (same environment; the agent reads the child's
  // pid from its hello): no re-parse in every child.
  auto* s = new Sampler(old->config());  // never destroyed
  g_sampler.store(s, std::memory_order_release);
  if (!s->StartInChild(old)) g_sampler.store(nullptr, std::memory_order_release);
}

ThreadStartWrap WrapThreadStart(void* (*start)(void*), void* arg) {
  Sampler* s = CurrentSampler();
  if (s == nullptr && !t_agent_thread) return {start, arg};
  auto* a = new StartArgs{start, arg, t_agent_thread};
  return {&ThreadTrampoline, a};
}

void DiscardThreadStart(const ThreadStartWrap& wrap) {
  if (wrap.start == &ThreadTrampoline) delete static_cast<StartArgs*>(wrap.arg);
}

}  // namespace agent
}  // namespace stackstream
