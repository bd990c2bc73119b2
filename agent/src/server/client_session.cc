#include "server/client_session.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <exception>

#include "log.h"
#include "pipeline/pipeline.h"
#include "pipeline/symbolizer.h"
#include "server/peer_files.h"
#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"
#include "unwind/remote_unwinder.h"
#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {
namespace {

constexpr size_t kMaxSetsKept = 16;
// A sample whose leaf is in no module of its generation may lie in a module
// loaded just before it (dlopen is noticed by the host within ~50 ms, or at
// the next dlclose): such a sample waits this long for a newer module set.
constexpr int64_t kHoldUnknownLeafNs = 150 * 1000000LL;
constexpr uint32_t kMaxRings = 16384;
constexpr uint32_t kMaxWeight = 10000;
// Bounds on what one host can make this agent hold (memory share).
constexpr size_t kMaxModulesPerHost = 8192;
constexpr uint64_t kMaxRingBytesPerHost = uint64_t{1} << 30;

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

// A memfd the host sealed at its size: mapping it cannot SIGBUS us later.
bool SealedAtLeast(int fd, uint64_t bytes) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) return false;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return static_cast<uint64_t>(st.st_size) >= bytes;
}

void* MapShared(int fd, uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? nullptr : p;
}

bool ValidHeader(const char* data, size_t len, size_t min_size) {
  if (len < sizeof(capture::MessageHeader) || len < min_size) return false;
  capture::MessageHeader h;
  memcpy(&h, data, sizeof h);
  return h.magic == capture::kMessageMagic && h.version == capture::kFormatVersion &&
         h.size == len;
}

std::string MountNamespace(const std::string& pid) {
  char buf[128];
  ssize_t n = readlink(("/proc/" + pid + "/ns/mnt").c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

ClientSession::ClientSession(int fd, pid_t peer_pid, uid_t peer_uid, gid_t peer_gid,
                             SharedState* shared)
    : fd_(fd), peer_pid_(peer_pid), peer_uid_(peer_uid), peer_gid_(peer_gid), shared_(shared) {
  name_ = "pid " + std::to_string(peer_pid);
  pid_ = peer_pid;
}

ClientSession::~ClientSession() {
  if (fd_ >= 0) close(fd_);
  if (host_stderr_ >= 0) close(host_stderr_);
  if (output_fd_ >= 0) close(output_fd_);
  for (auto& [id, r] : rings_) {
    if (r.base != nullptr) munmap(r.base, r.bytes);
  }
  if (control_ != nullptr) munmap(control_, sizeof(capture::ControlBlock));
  if (heap_table_ != nullptr) munmap(heap_table_, heap_table_bytes_);
}

bool ClientSession::ReadMessages() {
  if (!connected_) return false;
  alignas(8) char buf[capture::kMaxMessageBytes];
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  for (;;) {
    iovec iov = {buf, sizeof buf};
    msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      connected_ = false;
      return false;
    }
    int fds[4];
    int nfds = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm != nullptr; cm = CMSG_NXTHDR(&mh, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int f;
        memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
        if (nfds < 4) fds[nfds++] = f;
        else close(f);
      }
    }
    if (n == 0) {
      for (int i = 0; i < nfds; ++i) close(fds[i]);
      connected_ = false;
      return false;
    }
    bool ok = !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
              HandleMessage(buf, static_cast<size_t>(n), fds, nfds);
    for (int i = 0; i < nfds; ++i) {
      if (fds[i] >= 0) close(fds[i]);  // the handlers take what they keep (set to -1)
    }
    if (!ok) {
      LogRateLimited("bad_message", spdlog::level::warn,
                     "{}: malformed message from the host; disconnecting it (its rings are "
                     "still drained)", name_);
      connected_ = false;
      return false;
    }
  }
}

bool ClientSession::HandleMessage(const char* data, size_t len, int* fds, int nfds) {
  if (!ValidHeader(data, len, sizeof(capture::MessageHeader))) return false;
  capture::MessageHeader h;
  memcpy(&h, data, sizeof h);
  if (!have_hello_ && h.type != capture::kHello) return false;
  switch (h.type) {
    case capture::kHello:
      return !have_hello_ && HandleHello(data, len, fds, nfds);
    case capture::kRing:
      return HandleRing(data, len, fds, nfds);
    case capture::kModule:
      return HandleModule(data, len, false);
    case capture::kModuleGone:
      return HandleModule(data, len, true);
    case capture::kModulesEnd:
      return HandleModulesEnd(data, len);
    case capture::kHeapTable:
      return HandleHeapTable(data, len, fds, nfds);
    case capture::kFlush:
      flush_requested_ = true;
      return true;
    case capture::kGoodbye:
      goodbye_ = true;
      return true;
    default:
      return true;  // a newer host's message: ignore
  }
}

bool ClientSession::HandleHello(const char* data, size_t len, int* fds, int nfds) {
  if (!ValidHeader(data, len, sizeof(capture::HelloMessage)) || nfds < 1) return false;
  capture::HelloMessage hello;
  memcpy(&hello, data, sizeof hello);
  if (uint64_t{hello.env_bytes} + hello.exe_bytes + sizeof hello != len || hello.exe_bytes == 0) {
    return false;
  }
  const char* env = data + sizeof hello;
  const char* exe = env + hello.env_bytes;
  if (exe[hello.exe_bytes - 1] != '\0' || (hello.env_bytes > 0 && env[hello.env_bytes - 1] != '\0')) {
    return false;
  }
  if (!SealedAtLeast(fds[0], sizeof(capture::ControlBlock))) return false;
  void* mem = MapShared(fds[0], sizeof(capture::ControlBlock));
  if (mem == nullptr) return false;
  control_ = static_cast<capture::ControlBlock*>(mem);
  if (control_->magic != capture::kControlMagic || control_->version != capture::kFormatVersion) {
    return false;
  }
  if ((hello.flags & capture::kHelloHasStderr) && nfds >= 2) {
    host_stderr_ = fds[1];
    fds[1] = -1;
  }
  if ((hello.flags & capture::kHelloHasOutputFd) && nfds >= 3) {
    output_fd_ = fds[2];
    fds[2] = -1;
  }
  // The kernel's word on who this is (same pid namespace), not the host's.
  pid_ = peer_pid_ > 0 ? peer_pid_ : hello.pid;
  exe_ = exe;
  std::map<std::string, std::string> vars;
  for (size_t i = 0; i < hello.env_bytes;) {
    std::string kv(env + i);
    i += kv.size() + 1;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  EnvLookup lookup = [&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  config_ = ReadConfig(lookup, pid_, exe_);
  // STACKSTREAM_OUTPUT=/dev/stdout (or /dev/fd/N) means the host's descriptor,
  // which it handed over: write there, in place.
  if (output_fd_ >= 0) config_.output = "/proc/self/fd/" + std::to_string(output_fd_);
  if (!config_.collector_set && !shared_->default_collectors.empty()) {
    config_.collectors = shared_->default_collectors;
    config_.collector_set = true;
  }
  if (!config_.output.empty() && peer_uid_ != geteuid()) {
    LogRateLimited("foreign_output", spdlog::level::warn,
                   "{}: STACKSTREAM_OUTPUT ignored: the host runs as uid {}, this agent as uid {} "
                   "(it never writes files for another user)",
                   config_.service, static_cast<unsigned>(peer_uid_),
                   static_cast<unsigned>(geteuid()));
    config_.output.clear();
  }
  std::string pid = std::to_string(pid_);
  // Another mount namespace: its files are under /proc/PID/root. (A host
  // already gone has no namespace to read: its paths are taken as ours.)
  const std::string host_ns = MountNamespace(pid);
  if (!host_ns.empty() && host_ns != MountNamespace("self")) root_ = "/proc/" + pid + "/root";
  peer_files_ = std::make_unique<PeerFiles>(pid_, peer_uid_, peer_gid_, root_, exe_);
  name_ = config_.service + "[" + pid + "]";
  // A host that reconnects continues where an earlier agent stopped: count
  // only what happens from now on, plus this reconnect.
  uint64_t reconnects = control_->reconnects.load(std::memory_order_relaxed);
  if (reconnects > 0) {
    continues_other_ = true;
    seen_timers_failed_ = control_->timers_failed.load(std::memory_order_relaxed);
    seen_rings_failed_ = control_->rings_failed.load(std::memory_order_relaxed);
    seen_messages_dropped_ = control_->messages_dropped.load(std::memory_order_relaxed);
    seen_reconnects_ = reconnects - 1;
  }
  have_hello_ = true;
  pcs_.resize(static_cast<size_t>(config_.max_depth) + 1);
  next_flush_ns_ = MonoNs() + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
  AgentLog()->info("{}: connected ({} mode, {} Hz)", name_,
                   config_.mode == Mode::kWall ? "wall" : "cpu", config_.hz);
  return true;
}

bool ClientSession::HandleRing(const char* data, size_t len, int* fds, int nfds) {
  if (!ValidHeader(data, len, sizeof(capture::RingMessage)) || nfds < 1) return false;
  capture::RingMessage m;
  memcpy(&m, data, sizeof m);
  if (rings_.count(m.ring_id) != 0) return true;  // known already
  if (rings_.size() >= kMaxRings || m.bytes < capture::kRingHeaderBytes ||
      m.bytes > (uint64_t{1} << 32) || !SealedAtLeast(fds[0], m.bytes)) {
    return false;
  }
  if (ring_bytes_ + m.bytes > kMaxRingBytesPerHost) {
    // Over this host's share: its thread is not sampled (counted like a
    // thread with no ring), the host and its other rings go on.
    ++rings_refused_;
    LogRateLimited("ring_budget", spdlog::level::warn,
                   "{}: ring {} refused: the host's rings would exceed {} MiB", name_, m.ring_id,
                   kMaxRingBytesPerHost >> 20);
    return true;
  }
  void* mem = MapShared(fds[0], m.bytes);
  if (mem == nullptr) return false;
  Ring& r = rings_[m.ring_id];
  r.base = mem;
  r.bytes = m.bytes;
  ring_bytes_ += m.bytes;
  if (!r.ring.Attach(mem, m.bytes)) {
    munmap(mem, m.bytes);
    rings_.erase(m.ring_id);
    return false;
  }
  capture::RingHeader* h = r.ring.header();
  r.tail_at_attach = h->tail.load(std::memory_order_acquire);
  if (continues_other_) {
    r.seen_ring_full = h->dropped_ring_full.load(std::memory_order_relaxed);
    r.seen_bad_stack = h->dropped_bad_stack.load(std::memory_order_relaxed);
    r.seen_reentrant = h->reentrant.load(std::memory_order_relaxed);
  }
  return true;
}

bool ClientSession::HandleHeapTable(const char* data, size_t len, int* fds, int nfds) {
  if (!ValidHeader(data, len, sizeof(capture::HeapTableMessage)) || nfds < 1) return false;
  capture::HeapTableMessage m;
  memcpy(&m, data, sizeof m);
  if (heap_table_ != nullptr) return true;  // known already (a reconnect resends it)
  if (m.slots == 0 || (m.slots & (m.slots - 1)) != 0 || m.slots > (1u << 24) ||
      m.filter_slots > (1u << 24) || m.bytes != capture::HeapTableBytes(m.slots, m.filter_slots) ||
      !SealedAtLeast(fds[0], m.bytes)) {
    return false;
  }
  if (ring_bytes_ + m.bytes > kMaxRingBytesPerHost) {
    LogRateLimited("ring_budget", spdlog::level::warn,
                   "{}: heap table refused: the host's shared memory would exceed {} MiB", name_,
                   kMaxRingBytesPerHost >> 20);
    return true;  // no in-use profile for this host; everything else goes on
  }
  void* mem = MapShared(fds[0], m.bytes);
  if (mem == nullptr) return false;
  auto* h = static_cast<capture::HeapTableHeader*>(mem);
  if (h->magic != capture::kHeapTableMagic || h->version != capture::kFormatVersion ||
      h->slots != m.slots) {
    munmap(mem, m.bytes);
    return false;
  }
  heap_table_ = h;
  heap_table_bytes_ = m.bytes;
  ring_bytes_ += m.bytes;
  if (continues_other_) {
    seen_heap_ring_full_ = h->ring_full.load(std::memory_order_relaxed);
    seen_heap_table_full_ = h->table_full.load(std::memory_order_relaxed);
    seen_heap_no_thread_ = h->no_thread.load(std::memory_order_relaxed);
    seen_heap_reentrant_ = h->reentrant.load(std::memory_order_relaxed);
  }
  return true;
}

void ClientSession::OnAllocRecord(const capture::SampleRecord& rec, const ModuleSet* set,
                                  int depth, bool truncated) {
  // The record's registers are the hook's own: drop the frames in the
  // capture library, so the stack starts at the allocator's caller.
  const LoadedModule* own = set->Find(pcs_[0]);
  int skip = 0;
  while (own != nullptr && skip < depth && set->Find(pcs_[skip]) == own) ++skip;
  if (skip >= depth) {
    pending_.unwind_failures += 1;
    return;
  }
  uint64_t* pcs = pcs_.data() + skip;
  depth -= skip;
  // pcs[0] is a return address now; the builder looks a leaf up as is.
  pcs[0] -= 1;
  // Unbiased estimate (as tcmalloc): sampled with p = 1 - exp(-size/rate).
  // Both come from the host: bounded (1 TiB), so the weights stay finite
  // and far from int64's range whatever a record claims.
  constexpr uint64_t kMaxHeapFigure = uint64_t{1} << 40;
  const double size = static_cast<double>(std::clamp<uint64_t>(rec.alloc_size, 1, kMaxHeapFigure));
  const double rate = static_cast<double>(std::clamp<uint64_t>(rec.heap_rate, 1, kMaxHeapFigure));
  const double p = -std::expm1(-size / rate);
  const int64_t objects = std::max<int64_t>(1, std::llround(1.0 / p));
  const int64_t bytes = std::max<int64_t>(1, std::llround(size / p));
  RawSample sample;
  sample.kind = SampleKind::kAlloc;
  sample.heap_objects = objects;
  sample.heap_bytes = bytes;
  sample.pcs = pcs;
  sample.depth = static_cast<uint32_t>(depth);
  sample.truncated = truncated;
  sample.tid = rec.tid;
  sample.timestamp_ns = rec.timestamp_ns;
  sample.modules = set;
  try {
    sink_->OnSample(sample);
    samples_ += 1;
  } catch (const std::exception& e) {
    LogRateLimited("sink_exception", spdlog::level::warn, "pipeline failed: {}", e.what());
  }
  if (rec.alloc_id == 0 || heap_table_ == nullptr) return;
  // No more live allocations than the table has slots, whatever ids a host
  // sends (the flush drops those no longer in the table).
  if (live_.size() >= heap_table_bytes_ / sizeof(capture::HeapSlot) &&
      live_.count(rec.alloc_id) == 0) {
    return;
  }
  LiveAlloc& live = live_[rec.alloc_id];
  live.pcs.assign(pcs, pcs + depth);
  live.truncated = truncated;
  live.tid = rec.tid;
  live.objects = objects;
  live.bytes = bytes;
  for (const auto& [gen, s] : sets_) {
    if (s.get() == set) live.modules = s;
  }
}

void ClientSession::ReplayLiveAllocations() {
  if (heap_table_ == nullptr || sink_ == nullptr) return;
  std::unordered_set<uint64_t> ids;
  const auto* slots = reinterpret_cast<const capture::HeapSlot*>(
      reinterpret_cast<const uint8_t*>(heap_table_) + capture::kHeapTableHeaderBytes);
  const uint32_t n = static_cast<uint32_t>((heap_table_bytes_ - capture::kHeapTableHeaderBytes) /
                                           sizeof(capture::HeapSlot));
  const uint32_t count = std::min(n, heap_table_->slots);  // the header is the host's: bound it
  for (uint32_t i = 0; i < count; ++i) {
    if (slots[i].address.load(std::memory_order_acquire) <= capture::kHeapTombstone) continue;
    uint64_t id = slots[i].id.load(std::memory_order_acquire);
    if (id != 0) ids.insert(id);
  }
  for (auto it = live_.begin(); it != live_.end();) {
    if (ids.count(it->first) == 0) {
      it = live_.erase(it);
      continue;
    }
    const LiveAlloc& a = it->second;
    RawSample sample;
    sample.kind = SampleKind::kInuse;
    sample.heap_objects = a.objects;
    sample.heap_bytes = a.bytes;
    sample.pcs = a.pcs.data();
    sample.depth = static_cast<uint32_t>(a.pcs.size());
    sample.truncated = a.truncated;
    sample.tid = a.tid;
    sample.modules = a.modules.get();
    try {
      sink_->OnSample(sample);
    } catch (const std::exception& e) {
      LogRateLimited("sink_exception", spdlog::level::warn, "pipeline failed: {}", e.what());
    }
    ++it;
  }
}

bool ClientSession::HandleModule(const char* data, size_t len, bool gone) {
  if (!ValidHeader(data, len, sizeof(capture::ModuleMessage))) return false;
  capture::ModuleMessage m;
  memcpy(&m, data, sizeof m);
  if (m.path_bytes == 0 || sizeof m + m.path_bytes != len || data[len - 1] != '\0' ||
      m.segment_count > static_cast<uint32_t>(capture::kMaxModuleSegments)) {
    return false;
  }
  std::string path(data + sizeof m);
  auto key = std::make_pair(m.load_bias, path);
  // One set holds at most kMaxModulesPerHost modules; a host that sends more
  // (before its modules-end) is misbehaving.
  if (delta_add_.size() + delta_gone_.size() >= kMaxModulesPerHost) return false;
  if (gone) {
    delta_gone_.push_back(key);
  } else {
    delta_add_[key] = std::string(data, len);
  }
  return true;
}

bool ClientSession::HandleModulesEnd(const char* data, size_t len) {
  if (!ValidHeader(data, len, sizeof(capture::ModulesEndMessage))) return false;
  capture::ModulesEndMessage m;
  memcpy(&m, data, sizeof m);
  if (m.flags & capture::kModulesEndFull) current_modules_.clear();
  for (const auto& key : delta_gone_) current_modules_.erase(key);
  // Only files the host itself maps and may read (peer_files.h).
  if (!delta_add_.empty()) peer_files_->Refresh();
  for (auto& [key, raw] : delta_add_) {
    capture::ModuleMessage mm;
    memcpy(&mm, raw.data(), sizeof mm);
    std::string why;
    if (!peer_files_->Allow(key.second, mm.dev, mm.inode, &why)) {
      ++modules_rejected_;
      LogRateLimited("module_rejected", spdlog::level::warn,
                     "{}: module \"{}\" refused, nothing read from it: {}", name_,
                     key.second.substr(0, 256), why);
      continue;
    }
    current_modules_[key] = std::move(raw);
  }
  if (current_modules_.size() > kMaxModulesPerHost) return false;
  delta_gone_.clear();
  delta_add_.clear();
  std::vector<std::string> raw;
  raw.reserve(current_modules_.size());
  for (const auto& [key, message] : current_modules_) raw.push_back(message);
  int rejected = 0;
  sets_[m.generation] = ModuleSet::FromMessages(raw, root_, &rejected);
  if (!root_.empty()) {
    // /proc/PID/root is gone once the host exits: open its files now.
    held_files_ = shared_->files->OpenAll(*sets_[m.generation]);
  }
  modules_rejected_ += rejected;
  if (m.generation > last_generation_) last_generation_ = m.generation;
  while (sets_.size() > kMaxSetsKept) sets_.erase(sets_.begin());
  if (sink_ == nullptr) StartPipeline();
  return true;
}

void ClientSession::StartPipeline() {
  HostProcess process;
  process.pid = pid_;
  process.executable_path = exe_;
  if (!sets_.empty()) {
    for (const LoadedModule& mod : sets_.rbegin()->second->modules()) {
      if (mod.path == exe_) process.executable_build_id = mod.build_id;
    }
  }
  sink_ = shared_->make_sink ? shared_->make_sink(config_, process)
                             : CreatePipeline(config_, process, shared_->symbolizer.get());
  unwinder_ = std::make_unique<RemoteUnwinder>(shared_->files);
}

const ModuleSet* ClientSession::SetFor(uint64_t generation, bool final, bool* wait) {
  *wait = false;
  auto it = sets_.find(generation);
  if (it != sets_.end()) return it->second.get();
  if (generation > last_generation_ && connected_ && !goodbye_ && !final) {
    *wait = true;  // its modules are on their way
    return nullptr;
  }
  // The newest set not newer than the sample's, else the oldest kept.
  auto up = sets_.upper_bound(generation);
  if (up != sets_.begin()) return std::prev(up)->second.get();
  return sets_.empty() ? nullptr : sets_.begin()->second.get();
}

void ClientSession::Drain(bool final) {
  if (sink_ == nullptr) return;  // no module set yet: samples wait in the rings
  for (auto& [id, r] : rings_) {
    capture::SampleRing& ring = r.ring;
    // At most one ring's worth per pass: a host that keeps publishing (or
    // rewrites head) cannot hold this thread, which serves every host.
    uint32_t budget = ring.capacity();
    while (budget-- > 0) {
      const capture::SampleRecord* rec = ring.Peek();
      if (rec == nullptr) break;
      // The host can write this memory at any time: copy, then check.
      capture::SampleRecord copy;
      memcpy(&copy, rec, sizeof copy);
      bool wait = false;
      const ModuleSet* set = SetFor(copy.module_generation, final, &wait);
      if (wait) break;
      const uint64_t leaf = copy.regs[capture::kRegRip];
      if (set != nullptr && set->Find(leaf) == nullptr) {
        // A module loaded just before the sample: described in a newer set.
        const ModuleSet* newer = nullptr;
        for (auto it = sets_.upper_bound(copy.module_generation); it != sets_.end(); ++it) {
          if (it->second->Find(leaf) != nullptr) {
            newer = it->second.get();
            break;
          }
        }
        if (newer != nullptr) {
          set = newer;
        } else if (!final && connected_ && !goodbye_ &&
                   copy.timestamp_ns > RealtimeNs() - kHoldUnknownLeafNs) {
          break;  // its module may still be on its way
        }
      }
      uint32_t size = std::min(copy.stack_size, ring.stack_capacity());
      stack_copy_.resize(size);
      if (size > 0) memcpy(stack_copy_.data(), ring.StackOf(rec), size);
      uint32_t weight = std::clamp<uint32_t>(copy.weight, 1, kMaxWeight);
      StackSnapshot snap;
      std::copy(copy.regs, copy.regs + capture::kSnapshotRegs, snap.regs);
      snap.stack_start = copy.stack_start;
      snap.stack = stack_copy_.data();
      snap.stack_size = size;
      bool truncated = false;
      int depth = 0;
      if (set != nullptr) {
        try {
          depth = unwinder_->Unwind(*set, snap, pcs_.data(), config_.max_depth, &truncated);
        } catch (const std::exception& e) {
          LogRateLimited("unwind_exception", spdlog::level::warn, "unwinder failed: {}", e.what());
        }
      }
      ring.Pop();
      ++records_consumed_;
      if (depth <= 0) {
        pending_.unwind_failures += weight;
        continue;
      }
      // The copy ended before the stack did and the unwinder stopped there.
      if ((copy.flags & capture::kRecordStackCut) && depth < config_.max_depth) truncated = true;
      if (truncated) ++pending_.truncated_stacks;
      if (copy.kind == capture::kRecordAlloc) {
        OnAllocRecord(copy, set, depth, truncated);
        continue;
      }
      RawSample sample;
      sample.pcs = pcs_.data();
      sample.depth = static_cast<uint32_t>(depth);
      sample.truncated = truncated;
      sample.weight = weight;
      sample.tid = copy.tid;
      sample.timestamp_ns = copy.timestamp_ns;
      sample.modules = set;
      // Labels: bounded, checked on the copy; a bad or repeated one is left out.
      labels_.clear();
      const uint32_t label_count =
          std::min<uint32_t>(copy.label_count, capture::kMaxSampleLabels);
      for (uint32_t i = 0; i < label_count; ++i) {
        const capture::RecordLabel& l = copy.labels[i];
        if (!capture::IsValidRecordLabel(l)) continue;
        std::string key(l.key, l.key_size);
        bool repeated = false;
        for (const SampleLabel& seen : labels_) repeated = repeated || seen.key == key;
        if (!repeated) labels_.push_back({std::move(key), std::string(l.value, l.value_size)});
      }
      sample.labels = labels_.data();
      sample.label_count = static_cast<uint32_t>(labels_.size());
      try {
        sink_->OnSample(sample);
        samples_ += weight;
      } catch (const std::exception& e) {
        LogRateLimited("sink_exception", spdlog::level::warn, "pipeline failed: {}", e.what());
      }
    }
  }
}

SamplingCounters ClientSession::TakeCounters() {
  SamplingCounters c = pending_;
  pending_ = SamplingCounters();
  c.modules_rejected += modules_rejected_;
  modules_rejected_ = 0;
  c.timers_failed += rings_refused_;
  rings_refused_ = 0;
  auto delta = [](uint64_t now, uint64_t* seen) {
    int64_t d = now >= *seen ? static_cast<int64_t>(now - *seen) : 0;
    *seen = now;
    return d;
  };
  for (auto& [id, r] : rings_) {
    capture::RingHeader* h = r.ring.header();
    c.samples_dropped_ring_full +=
        delta(h->dropped_ring_full.load(std::memory_order_relaxed), &r.seen_ring_full);
    c.unwind_failures += delta(h->dropped_bad_stack.load(std::memory_order_relaxed), &r.seen_bad_stack);
    c.reentrant_signals += delta(h->reentrant.load(std::memory_order_relaxed), &r.seen_reentrant);
  }
  if (control_ != nullptr) {
    // Threads with no ring are not sampled, like threads with no timer.
    c.timers_failed += delta(control_->timers_failed.load(std::memory_order_relaxed),
                             &seen_timers_failed_);
    c.timers_failed += delta(control_->rings_failed.load(std::memory_order_relaxed),
                             &seen_rings_failed_);
    c.messages_dropped += delta(control_->messages_dropped.load(std::memory_order_relaxed),
                                &seen_messages_dropped_);
    c.agent_reconnects +=
        delta(control_->reconnects.load(std::memory_order_relaxed), &seen_reconnects_);
  }
  if (heap_table_ != nullptr) {
    capture::HeapTableHeader* h = heap_table_;
    c.heap_samples_dropped_ring_full +=
        delta(h->ring_full.load(std::memory_order_relaxed), &seen_heap_ring_full_);
    c.heap_samples_untracked_table_full +=
        delta(h->table_full.load(std::memory_order_relaxed), &seen_heap_table_full_);
    c.heap_samples_dropped_no_thread +=
        delta(h->no_thread.load(std::memory_order_relaxed), &seen_heap_no_thread_);
    c.reentrant_signals += delta(h->reentrant.load(std::memory_order_relaxed), &seen_heap_reentrant_);
  }
  if (continues_other_ && !lost_counted_ && control_ != nullptr) {
    // Records an earlier agent took out of the rings but never flushed.
    lost_counted_ = true;
    uint64_t taken = 0;
    for (auto& [id, r] : rings_) taken += r.tail_at_attach;
    uint64_t flushed = control_->agent_records_flushed.load(std::memory_order_relaxed);
    flushed_base_ = flushed;
    if (taken > flushed) c.samples_lost_agent_restart += static_cast<int64_t>(taken - flushed);
  }
  return c;
}

void ClientSession::CloseWindow() {
  if (sink_ == nullptr) return;
  ReplayLiveAllocations();
  sink_->Flush(TakeCounters());
  if (control_ != nullptr) {
    control_->agent_records_flushed.store(
        (continues_other_ ? flushed_base_ : 0) + static_cast<uint64_t>(records_consumed_),
        std::memory_order_relaxed);
  }
}

void ClientSession::SendGoodbyeDone() {
  if (goodbye_answered_ || !connected_) return;
  goodbye_answered_ = true;
  capture::SimpleMessage m;
  m.header.magic = capture::kMessageMagic;
  m.header.type = capture::kGoodbyeDone;
  m.header.size = sizeof m;
  m.header.version = capture::kFormatVersion;
  ssize_t n = send(fd_, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)n;
}

void ClientSession::Poll(int64_t now_ns, bool final) {
  if (done_) return;
  final = final || goodbye_ || !connected_;
  Drain(final);
  if (final) {
    if (sink_ == nullptr && !sets_.empty()) StartPipeline();
    Drain(true);
    CloseWindow();
    SendGoodbyeDone();
    done_ = true;
    AgentLog()->info("{}: {} ({} samples)", name_, connected_ ? "said goodbye" : "gone",
                     samples_);
    return;
  }
  if (flush_requested_ || now_ns >= next_flush_ns_) {
    flush_requested_ = false;
    next_flush_ns_ = now_ns + static_cast<int64_t>(config_.flush_ms) * 1000000LL;
    CloseWindow();
  }
}

void ClientSession::Finish(int64_t deadline_ns) {
  if (sink_ != nullptr) sink_->Finish(deadline_ns);
}

}  // namespace agent
}  // namespace stackstream
