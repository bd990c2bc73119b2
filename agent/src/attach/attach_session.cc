#include "attach/attach_session.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <random>

#include "attach/attach_error.h"
#include "attach/perf_thread_event.h"
#include "attach/process_maps.h"
#include "log.h"
#include "pipeline/pipeline.h"
#include "pipeline/symbolizer.h"
#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"
#include "unwind/remote_unwinder.h"
#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {
namespace {

constexpr int64_t kThreadRescanNs = 100 * 1000000LL;
// A sample outside every known module re-reads the maps at most this often
// (code that is not in a file, e.g. a JIT, would otherwise re-read them on
// every sample).
constexpr int64_t kUnknownPcRefreshNs = 100 * 1000000LL;

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::vector<pid_t> ListThreads(pid_t pid) {
  std::vector<pid_t> tids;
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (dir == nullptr) return tids;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long tid = strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && tid > 0) tids.push_back(static_cast<pid_t>(tid));
  }
  closedir(dir);
  return tids;
}

}  // namespace

AttachSession::AttachSession(pid_t pid, std::map<std::string, std::string> vars,
                             std::shared_ptr<ElfFileCache> files,
                             pipeline::Symbolizer* symbolizer)
    : pid_(pid),
      vars_(std::move(vars)),
      files_(std::move(files)),
      symbolizer_(symbolizer),
      rng_(std::random_device{}()) {
  name_ = "pid " + std::to_string(pid);
}

AttachSession::~AttachSession() {
  events_.clear();
  if (pidfd_ >= 0) close(pidfd_);
}

bool AttachSession::Start(std::string* error) {
  const std::string proc = "/proc/" + std::to_string(pid_);
  struct stat st;
  if (pid_ <= 0 || stat(proc.c_str(), &st) != 0) {
    *error = "no process with pid " + std::to_string(pid_);
    return false;
  }
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0 && errno == ESRCH) {
    *error = "no process with pid " + std::to_string(pid_);
    return false;
  }
  exe_ = ReadLink(proc + "/exe");
  EnvLookup lookup = [this](const char* name) -> const char* {
    auto it = vars_.find(name);
    return it == vars_.end() ? nullptr : it->second.c_str();
  };
  config_ = ReadConfig(lookup, pid_, exe_);
  for (const std::string& w : config_.warnings) AgentLog()->warn("{}", w);
  if (config_.mode != Mode::kCpu) {
    *error = "attach samples on-CPU time only (perf task-clock): mode must be cpu";
    return false;
  }
  name_ = config_.service + "[" + std::to_string(pid_) + "]";
  std::string root;
  if (ReadLink(proc + "/ns/mnt") != ReadLink("/proc/self/ns/mnt")) root = proc + "/root";
  maps_ = std::make_unique<ProcessMaps>(pid_, root, files_);
  // Threads first: perf_event_open's verdict on our rights is the precise one.
  ScanThreads();
  if (events_.empty()) {
    *error = threads_failed_ > 0
                 ? ExplainAttachError(pid_, first_error_, first_error_what_)
                 : "no process with pid " + std::to_string(pid_) + " (it exited)";
    events_.clear();
    return false;
  }
  if (!maps_->Refresh()) {
    int e = errno;
    *error = ExplainAttachError(pid_, e == 0 ? ESRCH : e, "reading " + proc + "/maps");
    if (e == EACCES || e == EPERM) {
      *error = "not allowed to read " + proc + "/maps: " + strerror(e) +
               " (missing ptrace rights over the target)";
    }
    events_.clear();
    return false;
  }
  last_maps_refresh_ns_ = ClockNs(CLOCK_MONOTONIC);
  HostProcess process;
  process.pid = pid_;
  process.executable_path = exe_;
  for (const LoadedModule& mod : maps_->modules()->modules()) {
    if (mod.path == exe_) process.executable_build_id = mod.build_id;
  }
  sink_ = CreatePipeline(config_, process, symbolizer_);
  unwinder_ = std::make_unique<RemoteUnwinder>(files_);
  pending_.timers_failed += threads_failed_;  // threads found at start, not opened
  pcs_.resize(static_cast<size_t>(config_.max_depth) + 1);
  realtime_offset_ns_ = ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_MONOTONIC);
  const int64_t now = ClockNs(CLOCK_MONOTONIC);
  next_flush_ns_ = now + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
  next_scan_ns_ = now + kThreadRescanNs;
  AgentLog()->info("{}: attached ({} threads, {} Hz, {} modules)", name_, events_.size(),
                   config_.hz, maps_->modules()->modules().size());
  return true;
}

void AttachSession::OpenThread(pid_t tid) {
  if (events_.count(tid) != 0 || failed_tids_.count(tid) != 0) return;
  int err = 0;
  std::string what;
  // A period of its own per thread, 3-10% off the nominal one either way:
  // a workload that repeats every period (or a multiple) would otherwise
  // always be sampled at the same phase (a 7 ms / 3 ms loop read 50/50 at
  // exactly 10 ms). The kernel re-arms the clock itself, so the period
  // cannot change per sample as in the in-process capture; over threads
  // the mean stays the nominal period.
  std::uniform_real_distribution<double> off(0.03, 0.10);
  double factor = 1.0 + ((rng_() & 1) ? off(rng_) : -off(rng_));
  auto period = static_cast<uint64_t>(static_cast<double>(config_.period_nanos()) * factor);
  auto ev = PerfThreadEvent::Open(tid, period, &err, &what);
  if (ev == nullptr) {
    if (err == ESRCH) return;  // exited before its event opened: nothing to sample
    failed_tids_[tid] = true;
    ++threads_failed_;
    if (sink_ != nullptr) ++pending_.timers_failed;
    if (first_error_ == 0) {
      first_error_ = err;
      first_error_what_ = what;
    }
    if (sink_ == nullptr) return;  // at start: Start() reports it if no thread opens
    LogRateLimited("attach_thread", spdlog::level::warn, "{}: thread {} not sampled: {}",
                   name_, tid, ExplainAttachError(pid_, err, what));
    return;
  }
  ++threads_seen_;
  events_[tid] = std::move(ev);
}

void AttachSession::ScanThreads() {
  std::vector<pid_t> tids = ListThreads(pid_);
  std::sort(tids.begin(), tids.end());
  // Threads that are gone: read what they left, then close their events.
  for (auto it = events_.begin(); it != events_.end();) {
    if (std::binary_search(tids.begin(), tids.end(), it->first)) {
      ++it;
      continue;
    }
    if (sink_ != nullptr) {
      PerfRecordHandler h;
      h.sample = [this](const PerfSample& s) { OnSample(s); };
      h.lost = [this](uint64_t n) {
        pending_.samples_dropped_ring_full += static_cast<int64_t>(n);
        lost_total_ += static_cast<int64_t>(n);
      };
      it->second->Drain(h);
    }
    it = events_.erase(it);
  }
  for (auto it = failed_tids_.begin(); it != failed_tids_.end();) {
    it = std::binary_search(tids.begin(), tids.end(), it->first) ? std::next(it)
                                                                  : failed_tids_.erase(it);
  }
  for (pid_t tid : tids) OpenThread(tid);
}

void AttachSession::OnSample(const PerfSample& s) {
  if (!s.has_regs || s.pid != pid_) {
    ++pending_.unwind_failures;
    ++not_unwound_;
    return;
  }
  const uint64_t leaf = s.regs[kRegRip];
  const int64_t now = ClockNs(CLOCK_MONOTONIC);
  if (maps_->modules()->Find(leaf) == nullptr &&
      (maps_dirty_ || now - last_maps_refresh_ns_ >= kUnknownPcRefreshNs)) {
    maps_dirty_ = false;
    last_maps_refresh_ns_ = now;
    maps_->Refresh();
  }
  const ModuleSet& set = *maps_->modules();
  StackSnapshot snap;
  std::copy(s.regs, s.regs + kSnapshotRegs, snap.regs);
  snap.stack_start = s.regs[kRegRsp];
  snap.stack = s.stack;
  snap.stack_size = static_cast<size_t>(s.stack_size);
  bool truncated = false;
  int depth = 0;
  try {
    depth = unwinder_->Unwind(set, snap, pcs_.data(), config_.max_depth, &truncated);
  } catch (const std::exception& e) {
    LogRateLimited("unwind_exception", spdlog::level::warn, "unwinder failed: {}", e.what());
  }
  if (depth <= 0) {
    ++pending_.unwind_failures;
    ++not_unwound_;
    return;
  }
  // The copy ended before the stack did (a stack deeper than the copy) and
  // the unwinder stopped there.
  if (s.stack_size == s.stack_requested && s.stack_size > 0 && depth < config_.max_depth) {
    uint64_t end = maps_->MappingEnd(snap.stack_start);
    if (end != 0 && snap.stack_start + s.stack_size < end) truncated = true;
  }
  if (truncated) ++pending_.truncated_stacks;
  RawSample sample;
  sample.pcs = pcs_.data();
  sample.depth = static_cast<uint32_t>(depth);
  sample.truncated = truncated;
  sample.weight = 1;
  sample.tid = s.tid;
  sample.timestamp_ns = static_cast<int64_t>(s.time_ns) + realtime_offset_ns_;
  sample.modules = &set;
  try {
    sink_->OnSample(sample);
    ++samples_;
  } catch (const std::exception& e) {
    LogRateLimited("sink_exception", spdlog::level::warn, "pipeline failed: {}", e.what());
  }
}

void AttachSession::DrainAll() {
  PerfRecordHandler h;
  h.sample = [this](const PerfSample& s) { OnSample(s); };
  h.lost = [this](uint64_t n) {
    pending_.samples_dropped_ring_full += static_cast<int64_t>(n);
    lost_total_ += static_cast<int64_t>(n);
  };
  h.mmap = [this](bool exec) {
    if (!exec) return;
    // New code mapped (dlopen): describe it before the samples that follow.
    maps_dirty_ = false;
    last_maps_refresh_ns_ = ClockNs(CLOCK_MONOTONIC);
    maps_->Refresh();
  };
  std::vector<pid_t> born;
  h.fork = [this, &born](int32_t pid, int32_t tid) {
    if (pid == pid_ && tid != pid_) born.push_back(tid);
  };
  for (auto& [tid, ev] : events_) ev->Drain(h);
  if (!gone_) {
    for (pid_t tid : born) OpenThread(tid);
  }
}

std::vector<int> AttachSession::event_fds() const {
  std::vector<int> fds;
  fds.reserve(events_.size());
  for (const auto& [tid, ev] : events_) fds.push_back(ev->fd());
  return fds;
}

bool AttachSession::TargetGone() {
  if (gone_) return true;
  if (pidfd_ >= 0) {
    pollfd p = {pidfd_, POLLIN, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP))) gone_ = true;
  } else if (kill(pid_, 0) != 0 && errno == ESRCH) {
    gone_ = true;
  }
  return gone_;
}

void AttachSession::CloseWindow() {
  if (sink_ == nullptr) return;
  SamplingCounters c = pending_;
  pending_ = SamplingCounters();
  sink_->Flush(c);
}

void AttachSession::Poll(int64_t now_ns, bool final) {
  if (done_ || sink_ == nullptr) return;
  TargetGone();
  DrainAll();
  if (!final && !gone_ && now_ns >= next_scan_ns_) {
    next_scan_ns_ = now_ns + kThreadRescanNs;
    ScanThreads();
  }
  if (final) {
    DrainAll();
    CloseWindow();
    events_.clear();
    done_ = true;
    AgentLog()->info("{}: detached ({} samples, {} threads, {} lost)", name_, samples_,
                     threads_seen_, lost_total_);
    return;
  }
  if (now_ns >= next_flush_ns_) {
    next_flush_ns_ = now_ns + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
    CloseWindow();
  }
}

void AttachSession::Finish(int64_t deadline_ns) {
  if (sink_ != nullptr) sink_->Finish(deadline_ns);
}

}  // namespace agent
}  // namespace stackstream
