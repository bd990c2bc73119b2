// ThreadRegistry: the set of ThreadStates (one per sampled thread) and the
// pool that recycles them. A state's ring is created (memfd) with the state
// and reused by later threads; it is recycled only once the agent drained it.
//
// Thread-safety: every method REQUIRES mu() held, except Snapshot() which
// takes it. The signal handler never calls into the registry; it reaches a
// ThreadState through the timer's sigev_value or the perf fd table.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "capture/thread_state.h"

namespace stackstream {
namespace agent {

class ThreadRegistry {
 public:
  // Rings get "ring_slots" records of up to "stack_capacity" stack bytes.
  ThreadRegistry(uint32_t ring_slots, uint32_t stack_capacity);
  ThreadRegistry(const ThreadRegistry&) = delete;
  ThreadRegistry& operator=(const ThreadRegistry&) = delete;

  std::mutex& mu() { return mu_; }

  // A ThreadState for "tid" (inactive, bounds unknown, no clock): a recycled
  // one or a new one. nullptr if its ring cannot be allocated.
  ThreadState* Acquire(int tid);

  // The live (not retired) state for "tid", or nullptr.
  ThreadState* FindLive(int tid);

  // Marks "ts" retired at "now_ns" (CLOCK_MONOTONIC); it stays in the list
  // until Recycle sees its ring empty.
  void Retire(ThreadState* ts, int64_t now_ns);

  // Retire, and if its ring is already empty (a short-lived thread that was
  // never sampled) return it to the pool at once, so that programs that
  // churn threads reuse a few states instead of piling them up.
  void RetireAndRecycleIfEmpty(ThreadState* ts, int64_t now_ns);

  // Moves retired states whose ring is empty and which retired more than
  // "grace_ns" ago back to the pool. Returns how many.
  int Recycle(int64_t now_ns, int64_t grace_ns);

  // All states that are not in the pool (live and retired).
  std::vector<ThreadState*> Snapshot();
  // Same, REQUIRES mu() held.
  std::vector<ThreadState*> SnapshotLocked() const;

  int live_count() const;

  // Rings created since the last call (to be handed to the agent).
  std::vector<ThreadState*> TakeNewRings();
  // Every state ever created, pooled ones included (all rings the agent
  // must know after a reconnect).
  std::vector<ThreadState*> AllRingsLocked() const;

 private:
  std::mutex mu_;
  const uint32_t ring_slots_;
  const uint32_t stack_capacity_;
  std::vector<ThreadState*> states_;  // never freed
  std::vector<ThreadState*> new_rings_;
  uint32_t next_ring_id_ = 1;
};

}  // namespace agent
}  // namespace stackstream
