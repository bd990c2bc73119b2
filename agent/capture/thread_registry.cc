#include "capture/thread_registry.h"

namespace stackstream {
namespace agent {

ThreadRegistry::ThreadRegistry(uint32_t ring_slots, uint32_t stack_capacity)
    : ring_slots_(ring_slots), stack_capacity_(stack_capacity) {}

ThreadState* ThreadRegistry::Acquire(int tid) {
  ThreadState* ts = nullptr;
  for (ThreadState* s : states_) {
    if (s->free) {
      ts = s;
      break;
    }
  }
  if (ts == nullptr) {
    ts = new ThreadState;  // never freed: a late signal may still reach it
    ts->ring_id = next_ring_id_++;
    ts->ring_fd = ts->ring.Create(ring_slots_, stack_capacity_, ts->ring_id);
    if (ts->ring_fd < 0) {
      delete ts;  // never published anywhere yet
      return nullptr;
    }
    states_.push_back(ts);
    new_rings_.push_back(ts);
  }
  ts->free = false;
  ts->retired = false;
  ts->retired_ns = 0;
  ts->foreign = false;
  ts->clock = ClockKind::kNone;
  ts->perf_fd = -1;
  ts->active.store(false, std::memory_order_relaxed);
  ts->stack_lo.store(0, std::memory_order_relaxed);
  ts->stack_hi.store(0, std::memory_order_relaxed);
  ts->probe_sp.store(0, std::memory_order_relaxed);
  ts->tid.store(tid, std::memory_order_release);
  ts->ring.header()->tid.store(tid, std::memory_order_relaxed);
  return ts;
}

std::vector<ThreadState*> ThreadRegistry::TakeNewRings() {
  std::vector<ThreadState*> out;
  out.swap(new_rings_);
  return out;
}

std::vector<ThreadState*> ThreadRegistry::AllRingsLocked() const { return states_; }

ThreadState* ThreadRegistry::FindLive(int tid) {
  for (ThreadState* s : states_) {
    if (!s->free && !s->retired && s->tid.load(std::memory_order_relaxed) == tid) return s;
  }
  return nullptr;
}

void ThreadRegistry::Retire(ThreadState* ts, int64_t now_ns) {
  ts->active.store(false, std::memory_order_release);
  ts->retired = true;
  ts->retired_ns = now_ns;
}

void ThreadRegistry::RetireAndRecycleIfEmpty(ThreadState* ts, int64_t now_ns) {
  Retire(ts, now_ns);
  if (ts->ring.Empty()) {
    ts->free = true;
    ts->tid.store(0, std::memory_order_relaxed);
  }
}

int ThreadRegistry::Recycle(int64_t now_ns, int64_t grace_ns) {
  int n = 0;
  for (ThreadState* s : states_) {
    if (!s->free && s->retired && now_ns - s->retired_ns >= grace_ns && s->ring.Empty()) {
      s->free = true;
      s->tid.store(0, std::memory_order_relaxed);
      ++n;
    }
  }
  return n;
}

std::vector<ThreadState*> ThreadRegistry::Snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  return SnapshotLocked();
}

std::vector<ThreadState*> ThreadRegistry::SnapshotLocked() const {
  std::vector<ThreadState*> out;
  out.reserve(states_.size());
  for (ThreadState* s : states_) {
    if (!s->free) out.push_back(s);
  }
  return out;
}

int ThreadRegistry::live_count() const {
  int n = 0;
  for (ThreadState* s : states_) n += (!s->free && !s->retired) ? 1 : 0;
  return n;
}

}  // namespace agent
}  // namespace stackstream
