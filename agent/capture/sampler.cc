// Sampler: lifecycle, thread registration and the drain thread.
// Nothing here runs in the signal handler (see signal_handler.cc).
#include "capture/sampler.h"

#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "log.h"
#include "pipeline/pipeline.h"
#include "sample_sink.h"
#include "capture/sample_timer.h"
#include "capture/signal_handler.h"
#include "capture/thread_registry.h"
#include "capture/thread_scan.h"
#include "unwind/remote_unwinder.h"

namespace stackstream {
namespace agent {

namespace pipeline {
// Declared in pipeline/sender.h (not included here: it needs the generated
// protobuf headers, which this library does not see).
void GrpcForkChildEarly();
}  // namespace pipeline

namespace {

constexpr int64_t kDrainIntervalMs = 20;
constexpr int64_t kRescanIntervalNs = 200 * 1000000LL;
constexpr int64_t kMaskCheckIntervalNs = 1000 * 1000000LL;
constexpr int64_t kHandlerCheckIntervalNs = 1000 * 1000000LL;
// A retired state is reused as soon as its ring is drained: a late signal
// for the old thread cannot write into it, because the handler checks the
// interrupted SP against the (new) thread's stack bounds first.
constexpr int64_t kRetireGraceNs = 0;
constexpr int kMaxInternalFailures = 5;
constexpr int64_t kExitBudgetNs = 1000 * 1000000LL;     // whole exit path
constexpr int64_t kShutdownDeadlineNs = 850 * 1000000LL;  // given to the sink

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// Initial-exec TLS: the agent is preloaded, so it is in the static TLS block.
__thread bool t_agent_thread __attribute__((tls_model("initial-exec"))) = false;

pthread_key_t g_thread_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

// Ring size: ~300 ms of samples at the rate, so a slow drain (first
// symbolization) loses nothing.
uint32_t RingSlotsFor(int hz) {
  int64_t want = static_cast<int64_t>(hz) * 300 / 1000;
  return static_cast<uint32_t>(std::clamp<int64_t>(want, 16, 64));
}

void BlockAsyncSignals() {
  sigset_t set;
  sigfillset(&set);
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

class NullSink : public SampleSink {
 public:
  void OnSample(const RawSample&) override {}
  void Flush(const SamplingCounters&) override {}
  void Shutdown(const SamplingCounters&, int64_t) override {}
};

void ThreadKeyDestructor(void* value);

}  // namespace

class Sampler {
 public:
  explicit Sampler(const Config& config) : config_(config) {}

  bool Start();
  void RegisterCurrentThread();
  void RegisterAgentThread();
  void UnregisterCurrentThread();
  void Shutdown();
  void RequestFlush();
  void DrainBeforeUnload(int timeout_ms);
  void SetPaused(bool paused);
  std::mutex& registry_mu() { return registry_->mu(); }
  // In a forked child, REQUIRES registry mu held (taken in prepare):
  // close inherited perf fds.
  void AbandonInChild();

 private:
  static void* DrainThreadMain(void* self);
  void DrainLoop();
  bool DrainAll();
  void Rescan(int64_t now, bool check_masks);
  void ArmLocked(ThreadState* ts, bool signal_blocked);
  void TurnOff(const char* why);
  void HarvestCounters(ThreadState* ts);
  SamplingCounters TakeCounters();

  const Config config_;
  int signo_ = -1;
  ClockSpec clock_spec_;
  ThreadRegistry* registry_ = nullptr;      // never destroyed
  std::set<pid_t> agent_tids_;             // guarded by registry mu

  // Drain thread control.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
  bool drain_done_ = false;
  bool flush_requested_ = false;
  uint64_t drain_requests_ = 0;
  uint64_t drains_completed_ = 0;
  int64_t shutdown_deadline_ns_ = 0;
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> turned_off_{false};

  // Owned by the drain thread.
  std::unique_ptr<SampleSink> sink_;
  std::unique_ptr<RemoteUnwinder> unwinder_;
  std::vector<uint64_t> pcs_;
  SamplingCounters pending_;
  int internal_failures_ = 0;
  unsigned long long dl_adds_ = 0, dl_subs_ = 0;
  std::atomic<int64_t> timers_failed_{0};
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

// Turns "fn" into its dlsym(RTLD_NEXT) definition.
int (*g_real_pthread_create)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*) =
    nullptr;

}  // namespace

PthreadCreateFn RealPthreadCreate() {
  if (g_real_pthread_create == nullptr) {
    g_real_pthread_create =
        reinterpret_cast<PthreadCreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
    if (g_real_pthread_create == nullptr) {
      g_real_pthread_create =
          reinterpret_cast<PthreadCreateFn>(dlsym(RTLD_DEFAULT, "pthread_create"));
    }
  }
  return g_real_pthread_create;
}

bool Sampler::Start() {
  pthread_once(&g_key_once, MakeKey);
  signo_ = PickSampleSignal();
  if (signo_ < 0 || !InstallSampleHandler(signo_)) {
    AgentLog()->warn("no free real-time signal for sampling; the agent is off");
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
        AgentLog()->warn("STACKSTREAM_CPU_CLOCK=perf but perf_event_open is not permitted; "
                         "using per-thread CPU timers");
      }
    }
  }
  registry_ = new ThreadRegistry(RingSlotsFor(config_.hz), kStackCopyBytes);
  pcs_.resize(static_cast<size_t>(config_.max_depth) + 1);
  SetSamplingEnabled(true);
  RegisterCurrentThread();
  {
    // Threads that already exist (e.g. when started late): found by scanning.
    Rescan(MonoNs(), false);
  }
  PthreadCreateFn create = RealPthreadCreate();
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t old;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);  // the drain thread starts with all blocked
  int rc = create != nullptr ? create(&th, &attr, &Sampler::DrainThreadMain, this) : -1;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    AgentLog()->warn("cannot start the drain thread; the agent is off");
    SetSamplingEnabled(false);
    std::lock_guard<std::mutex> lock(registry_->mu());
    for (ThreadState* ts : registry_->SnapshotLocked()) DisarmThreadClock(ts);
    return false;
  }
  AgentLog()->info("sampling {} mode at {} Hz with {} on signal {}",
                   clock_spec_.wall ? "wall" : "cpu", config_.hz,
                   clock_spec_.wall ? "wall-clock timers"
                                    : (clock_spec_.use_perf ? "perf task-clock" : "CPU timers"),
                   signo_);
  return true;
}

void Sampler::ArmLocked(ThreadState* ts, bool signal_blocked) {
  ClockSpec spec = clock_spec_;
  // A thread that blocks our signal would queue one perf signal per period.
  if (signal_blocked) spec.use_perf = false;
  int err = 0;
  if (!ArmThreadClock(ts, spec, &err)) {
    timers_failed_.fetch_add(1, std::memory_order_relaxed);
    LogRateLimited("timer_failed", spdlog::level::warn,
                   "cannot create a sampling timer for thread {}: {} (thread not sampled)",
                   ts->tid.load(), strerror(err));
    registry_->Retire(ts, MonoNs());
  }
}

void Sampler::RegisterCurrentThread() {
  if (turned_off_.load() || shutting_down_.load()) return;
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
    return;
  }
  ts = registry_->Acquire(tid);
  if (ts == nullptr) {
    timers_failed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ts->stack_lo.store(lo, std::memory_order_relaxed);
  ts->stack_hi.store(hi, std::memory_order_relaxed);
  ts->active.store(true, std::memory_order_release);
  ArmLocked(ts, blocked);
}

void Sampler::RegisterAgentThread() {
  pthread_setspecific(g_thread_key, reinterpret_cast<void*>(2));
  pid_t tid = CurrentTid();
  std::lock_guard<std::mutex> lock(registry_->mu());
  agent_tids_.insert(tid);
  if (ThreadState* ts = registry_->FindLive(tid)) {  // a scan got there first
    DisarmThreadClock(ts);
    registry_->Retire(ts, MonoNs());
  }
}

void Sampler::UnregisterCurrentThread() {
  pid_t tid = CurrentTid();
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
        AgentLog()->debug("thread {} blocks signal {}: switching it to a POSIX timer", tid, signo_);
        int err = 0;
        if (!SwitchToPosixTimer(ts, clock_spec_, &err)) {
          timers_failed_.fetch_add(1, std::memory_order_relaxed);
          registry_->Retire(ts, now);
        }
      }
    }
  }
  if (turned_off_.load() || shutting_down_.load()) return;
  for (pid_t tid : tids) {
    if (agent_tids_.count(tid) != 0 || registry_->FindLive(tid) != nullptr) continue;
    ThreadState* ts = registry_->Acquire(tid);
    if (ts == nullptr) {
      timers_failed_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ts->foreign = true;
    ts->active.store(true, std::memory_order_release);
    bool blocked = false;
    ThreadBlocksSignal(tid, signo_, &blocked);
    ArmLocked(ts, blocked);
  }
}

void* Sampler::DrainThreadMain(void* self) {
  t_agent_thread = true;
  pthread_setname_np(pthread_self(), "ss-drain");  // tells users (top -H) what it is
  Sampler* s = static_cast<Sampler*>(self);
  s->RegisterAgentThread();
  BlockAsyncSignals();
  s->DrainLoop();
  return nullptr;
}

void Sampler::HarvestCounters(ThreadState* ts) {
  pending_.samples_dropped_ring_full +=
      static_cast<int64_t>(ts->dropped_ring_full.exchange(0, std::memory_order_relaxed));
  pending_.unwind_failures +=
      static_cast<int64_t>(ts->dropped_bad_stack.exchange(0, std::memory_order_relaxed));
  pending_.reentrant_signals +=
      static_cast<int64_t>(ts->reentrant.exchange(0, std::memory_order_relaxed));
}

SamplingCounters Sampler::TakeCounters() {
  pending_.timers_failed += timers_failed_.exchange(0, std::memory_order_relaxed);
  SamplingCounters out = pending_;
  pending_ = SamplingCounters();
  return out;
}

namespace {
int CountModules(dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<unsigned long long*>(data);
  out[0] = info->dlpi_adds;
  out[1] = info->dlpi_subs;
  return 1;  // the counters are the same in every entry
}
}  // namespace

bool Sampler::DrainAll() {
  unsigned long long counts[2] = {0, 0};
  dl_iterate_phdr(CountModules, counts);
  if (counts[0] != dl_adds_ || counts[1] != dl_subs_) {
    dl_adds_ = counts[0];
    dl_subs_ = counts[1];
    unwinder_->InvalidateModules();
  }
  bool any = false;
  for (ThreadState* ts : registry_->Snapshot()) {
    while (const SampleRecord* rec = ts->ring.Peek()) {
      any = true;
      StackSnapshot snap;
      std::copy(rec->regs, rec->regs + kSnapshotRegs, snap.regs);
      snap.stack_start = rec->stack_start;
      snap.stack = rec->stack();
      snap.stack_size = rec->stack_size;
      bool truncated = false;
      int depth = 0;
      try {
        depth = unwinder_->Unwind(snap, pcs_.data(), config_.max_depth, &truncated);
      } catch (const std::exception& e) {
        ++internal_failures_;
        LogRateLimited("unwind_exception", spdlog::level::warn, "unwinder failed: {}", e.what());
      }
      if (depth <= 0) {
        pending_.unwind_failures += rec->weight;
        ts->ring.Pop();
        continue;
      }
      // The copy ended before the stack did and the unwinder stopped there.
      if ((rec->flags & kRecordStackCut) && depth < config_.max_depth) truncated = true;
      if (truncated) ++pending_.truncated_stacks;
      RawSample sample;
      sample.pcs = pcs_.data();
      sample.depth = static_cast<uint32_t>(depth);
      sample.truncated = truncated;
      sample.weight = rec->weight;
      sample.tid = rec->tid;
      sample.timestamp_ns = rec->timestamp_ns;
      try {
        sink_->OnSample(sample);
      } catch (const std::exception& e) {
        ++internal_failures_;
        LogRateLimited("sink_exception", spdlog::level::warn, "pipeline failed: {}", e.what());
      }
      ts->ring.Pop();
    }
    HarvestCounters(ts);
  }
  {
    std::lock_guard<std::mutex> lock(registry_->mu());
    registry_->Recycle(MonoNs(), kRetireGraceNs);
  }
  if (internal_failures_ >= kMaxInternalFailures) TurnOff("repeated internal failures");
  return any;
}

void Sampler::TurnOff(const char* why) {
  if (turned_off_.exchange(true)) return;
  SetSamplingEnabled(false);
  {
    std::lock_guard<std::mutex> lock(registry_->mu());
    for (ThreadState* ts : registry_->SnapshotLocked()) {
      if (ts->retired) continue;
      DisarmThreadClock(ts);
      registry_->Retire(ts, MonoNs());
    }
  }
  LogOnce("turned_off", spdlog::level::err, "sampling turned off: {}", why);
}

void Sampler::DrainLoop() {
  try {
    sink_ = CreatePipeline(config_);
  } catch (const std::exception& e) {
    AgentLog()->error("cannot create the pipeline: {}", e.what());
  }
  if (!sink_) {
    sink_ = std::make_unique<NullSink>();
    TurnOff("no pipeline");
  }
  unwinder_ = std::make_unique<RemoteUnwinder>();
  for (const std::string& w : config_.warnings) AgentLog()->warn("{}", w);

  int64_t now = MonoNs();
  int64_t next_flush = now + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
  int64_t next_scan = now + kRescanIntervalNs;
  int64_t next_mask_check = now + kMaskCheckIntervalNs;
  int64_t next_handler_check = now + kHandlerCheckIntervalNs;
  int64_t deadline = 0;
  for (;;) {
    bool stop = false, flush = false;
    uint64_t request = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(kDrainIntervalMs), [this] {
        return stop_requested_ || flush_requested_ || drain_requests_ > drains_completed_;
      });
      stop = stop_requested_;
      flush = flush_requested_;
      flush_requested_ = false;
      request = drain_requests_;
      deadline = shutdown_deadline_ns_;
    }
    DrainAll();
    {
      std::lock_guard<std::mutex> lock(mu_);
      drains_completed_ = request;
    }
    cv_.notify_all();
    if (stop) break;
    now = MonoNs();
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
    if (now >= next_flush || flush) {
      next_flush = now + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
      try {
        sink_->Flush(TakeCounters());
      } catch (const std::exception& e) {
        ++internal_failures_;
        LogRateLimited("flush_exception", spdlog::level::warn, "flush failed: {}", e.what());
      }
    }
  }
  try {
    sink_->Shutdown(TakeCounters(), deadline);
  } catch (const std::exception& e) {
    AgentLog()->warn("final flush failed: {}", e.what());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_done_ = true;
  }
  cv_.notify_all();
}

void Sampler::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  int64_t start = MonoNs();
  SetSamplingEnabled(false);
  {
    std::lock_guard<std::mutex> lock(registry_->mu());
    for (ThreadState* ts : registry_->SnapshotLocked()) {
      if (!ts->retired) DisarmThreadClock(ts);
    }
  }
  if (t_agent_thread) return;  // exit() called on an agent thread: nothing to wait for
  std::unique_lock<std::mutex> lock(mu_);
  stop_requested_ = true;
  shutdown_deadline_ns_ = start + kShutdownDeadlineNs;
  cv_.notify_all();
  cv_.wait_until(lock,
                 std::chrono::steady_clock::now() + std::chrono::nanoseconds(kExitBudgetNs),
                 [this] { return drain_done_; });
}

void Sampler::RequestFlush() {
  std::lock_guard<std::mutex> lock(mu_);
  flush_requested_ = true;
  cv_.notify_all();
}

void Sampler::DrainBeforeUnload(int timeout_ms) {
  if (t_agent_thread || shutting_down_.load()) return;
  // Only worth a wait when samples are pending (they may point into the
  // module about to be unmapped).
  bool pending = false;
  for (ThreadState* ts : registry_->Snapshot()) pending |= !ts->ring.Empty();
  if (!pending) return;
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t want = ++drain_requests_;
  cv_.notify_all();
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [this, want] { return drains_completed_ >= want || drain_done_; });
}

void Sampler::SetPaused(bool paused) {
  if (turned_off_.load() || shutting_down_.load()) return;
  SetSamplingEnabled(!paused);
}

void Sampler::AbandonInChild() {
  for (ThreadState* ts : registry_->SnapshotLocked()) ForgetInheritedClock(ts);
  ClearPerfFdTable();
}

// ---- free functions ----

Sampler* CurrentSampler() { return g_sampler.load(std::memory_order_acquire); }

bool IsAgentThread() { return t_agent_thread; }

namespace {
void StartWithConfig(const Config& config) {
  InitAgentLog(config);
  if (config.disabled) return;
  auto* s = new Sampler(config);  // never destroyed
  g_sampler.store(s, std::memory_order_release);
  if (!s->Start()) g_sampler.store(nullptr, std::memory_order_release);
}
}  // namespace

void StartAgent() {
  if (g_started.exchange(true)) return;
  StartWithConfig(ReadConfigFromEnv(static_cast<int>(getpid())));
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

void DrainBeforeUnload(int timeout_ms) {
  if (Sampler* s = CurrentSampler()) s->DrainBeforeUnload(timeout_ms);
}

void AgentForkPrepare() {
  if (Sampler* s = CurrentSampler()) s->registry_mu().lock();
}

void AgentForkParent() {
  if (Sampler* s = CurrentSampler()) s->registry_mu().unlock();
}

void AgentForkChild() {
  // Before the child's new pipeline (and sender) can exist: may it use gRPC?
  pipeline::GrpcForkChildEarly();
  ResetAgentLogAfterFork();
  Sampler* old = CurrentSampler();
  if (old == nullptr) return;  // disabled or failed in the parent: stay so
  // The parent's sampler is abandoned (its mutex stays locked, its drain
  // thread does not exist here); a new one starts for this process.
  old->AbandonInChild();
  g_sampler.store(nullptr, std::memory_order_release);
  if (g_shutdown_done.load()) return;  // forked during exit
  StartWithConfig(ReadConfigFromEnv(static_cast<int>(getpid())));
}

// gRPC starts its threads on whichever thread calls grpc_init() or forks
// (its fork handlers restart them): agent_main.cc marks that thread around
// those calls so that they are registered as agent threads, not sampled as
// the host's. Returns the previous mark. (Declared in agent_main.cc.)
bool SetCreatingAgentThreads(bool on) {
  bool old = t_agent_thread;
  t_agent_thread = on;
  return old;
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
