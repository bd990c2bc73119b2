// HeapSampler: native heap profiling by allocator interposition (the hooks
// are in allocator_hooks.cc; this is what they call).
//
// Sampling, as tcmalloc and jemalloc do it: every thread counts down an
// exponentially distributed number of bytes (mean STACKSTREAM_HEAP_RATE);
// the allocation that takes the count to zero or below is sampled and a new
// count is drawn. An allocation of s bytes is then sampled with probability
// 1 - exp(-s/rate), and the agent weights it by the inverse of that
// (unbiased: totals estimate the true bytes and counts).
//
// A sampled allocation: its registers (taken in the hook itself) and a copy
// of the top of its stack go into the thread's SampleRing as a kRecordAlloc
// record, exactly like a CPU sample (unwound in stackstream-agent); its
// address goes into the shared live table (capture_format.h), and a free of
// that address clears it. In-use = sampled records still in the table.
//
// Contract of the hot path (runs inside every malloc/free of the host):
// - off: one load and one predictable branch (HeapSamplingOn()).
// - on: a thread-local countdown (initial-exec TLS: valid from the thread's
//   first instruction, before it is registered) and, on free, one load of
//   the filter's presence bits; the table is touched only when the filter
//   says the address may be sampled.
// - never a lock, never an allocation, never a call back into the host's
//   allocator; the slow path (a sample) makes no system call except
//   clock_gettime (vDSO). Re-entry (a signal handler or our own code
//   allocating inside the slow path) is detected per thread and skipped
//   (counted).
// - the thread's ring is shared with its own CPU signal handler: the hook
//   takes the ring with the ThreadState's in_handler guard, so a signal that
//   arrives meanwhile drops its sample (counted as reentrant), never tears a
//   record.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

struct ThreadState;

namespace heap {

extern std::atomic<bool> g_on;
extern __thread int64_t t_bytes_left __attribute__((tls_model("initial-exec")));
// The live table (shared memory) and its host-side counting filter: a
// counter of sampled live allocations per 4 KiB page of address space
// (pages 64 Ki pages apart share a counter; 0: none sampled there). By
// page, not by hash: frees of neighbouring blocks read the same cache line,
// so the filter stays cached (a hashed one missed the cache on most frees of
// a pointer-chasing workload), and at the default rate one small-object
// page in a hundred or more holds a sampled block, so almost every free
// stops at the filter.
extern std::atomic<capture::HeapTableHeader*> g_table;
constexpr uint32_t kFilterSlots = 1u << 16;
// The free path reads one bit per counter instead, host-private: set while
// the counter is above 0. 8 KiB (a cache line covers 2 MiB of address
// space), so the one load every free makes stays in the L1 cache. The
// counters change, and the bits with them, only on the slow paths (a
// sample, a free of a block in a sampled page).
extern std::atomic<uint64_t> g_present[kFilterSlots / 64];

inline uint64_t AddressHash(uint64_t address) { return (address >> 4) * 0x9e3779b97f4a7c15ULL; }
inline uint32_t FilterIndex(uint64_t address) {
  return static_cast<uint32_t>(address >> 12) & (kFilterSlots - 1);
}
inline bool MayBeSampled(uint64_t address) {
  const uint32_t i = FilterIndex(address);
  return (g_present[i >> 6].load(std::memory_order_relaxed) >> (i & 63)) & 1;
}

inline bool HeapSamplingOn() { return g_on.load(std::memory_order_relaxed); }

// Slow paths, out of line.
void SampleAllocation(void* p, size_t size);
void RecordFree(capture::HeapTableHeader* table, uint64_t address);

// Hot path: after a successful allocation of "size" bytes at "p".
inline void OnAlloc(void* p, size_t size) {
  if (p == nullptr) return;
  int64_t left = t_bytes_left - static_cast<int64_t>(size);
  t_bytes_left = left;
  if (__builtin_expect(left > 0, 1)) return;
  SampleAllocation(p, size);
}

// Hot path: before "p" goes back to the allocator. One load of the
// presence bits for a block that was not sampled.
inline void OnFree(void* p) {
  const uint64_t address = reinterpret_cast<uintptr_t>(p);
  if (__builtin_expect(!MayBeSampled(address), 1)) return;
  capture::HeapTableHeader* table = g_table.load(std::memory_order_acquire);
  if (table == nullptr || p == nullptr) return;
  RecordFree(table, address);
}

// ---- lifecycle (Sampler, not async-signal-safe) ----

// Creates the live table (memfd) for sampling at "rate" mean bytes.
// Returns the table's fd (kept; sent to the agent with kHeapTable) or -1.
int Start(int64_t rate);
// Turns sampling on (after Start, once the first thread is registered).
void Enable();
// Table geometry for the kHeapTable message.
void TableGeometry(uint32_t* slots, uint32_t* filter_slots, uint64_t* bytes);
// Stops sampling (exit). The table stays mapped.
void Stop();
// In a forked child, first thing: forget the parent's table (shared memory:
// the child must never write to it) and the forking thread's state. Sampling
// stays off until Start runs again for the child.
void ForgetInChild();
// The calling thread's ThreadState (its ring), or nullptr.
void SetCurrentThread(ThreadState* ts);

}  // namespace heap
}  // namespace agent
}  // namespace stackstream
