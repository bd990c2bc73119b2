// HeapSampler (see heap_sampler.h for the contract). Everything from
// SampleAllocation down runs inside the host's malloc/free: no locks, no
// allocation, no calls into the allocator.
#include "capture/shared_memfd.h"
#include "capture/heap_sampler.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <new>

#include "capture/capture_format.h"
#include "capture/sampler.h"
#include "capture/signal_handler.h"
#include "capture/thread_state.h"

namespace stackstream {
namespace agent {
namespace heap {

std::atomic<bool> g_on{false};
__thread int64_t t_bytes_left __attribute__((tls_model("initial-exec"))) = 0;
std::atomic<capture::HeapTableHeader*> g_table{nullptr};
alignas(64) std::atomic<uint64_t> g_present[kFilterSlots / 64];

namespace {

constexpr uint32_t kTableSlots = 1u << 16;    // 1 MiB of slots, touched as used
// kFilterSlots (heap_sampler.h): 128 KiB of counters (256 MiB of pages), touched as used.

__thread ThreadState* t_state __attribute__((tls_model("initial-exec"))) = nullptr;
__thread int32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;
__thread bool t_busy __attribute__((tls_model("initial-exec"))) = false;
__thread uint64_t t_rng __attribute__((tls_model("initial-exec"))) = 0;

int64_t g_rate = 512 * 1024;
std::atomic<uint64_t> g_next_id{0};
// The longest probe any insert has needed (0: its home slot). A remove looks
// no further: freed slots leave tombstones that a chain does not end at, so
// without this bound a free in a sampled page walked all kHeapProbe slots
// once the table had seen enough samples. An insert raises it before its
// allocation reaches the host, so the free of that allocation sees it.
std::atomic<uint32_t> g_max_probe{0};


inline capture::HeapSlot* Slots(capture::HeapTableHeader* t) {
  return reinterpret_cast<capture::HeapSlot*>(reinterpret_cast<uint8_t*>(t) +
                                              capture::kHeapTableHeaderBytes);
}

inline std::atomic<uint16_t>* Filter(capture::HeapTableHeader* t) {
  return reinterpret_cast<std::atomic<uint16_t>*>(reinterpret_cast<uint8_t*>(Slots(t)) +
                                                  uint64_t{t->slots} * sizeof(capture::HeapSlot));
}

// The counter of "index" went from 1 to 0: clear its presence bit, unless
// another thread counted up meanwhile (it sets the bit before or after this
// clear: either way the bit ends set while the counter is above 0).
void CountedDown(std::atomic<uint16_t>& f, uint32_t index) {
  const uint64_t bit = uint64_t{1} << (index & 63);
  g_present[index >> 6].fetch_and(~bit);
  if (f.load() != 0) g_present[index >> 6].fetch_or(bit);
}

bool TableInsert(capture::HeapTableHeader* t, uint64_t address, uint64_t id) {
  const uint64_t h = AddressHash(address);
  const uint32_t mask = t->slots - 1;
  const uint32_t index = FilterIndex(address);
  std::atomic<uint16_t>& f = Filter(t)[index];
  uint16_t count = f.load();
  do {
    if (count == UINT16_MAX) return false;  // never wraps to 0
  } while (!f.compare_exchange_weak(count, count + 1));
  // Before the allocation is handed to the host: any free of it sees the bit.
  if (count == 0) g_present[index >> 6].fetch_or(uint64_t{1} << (index & 63));
  capture::HeapSlot* slots = Slots(t);
  for (uint32_t i = 0; i < capture::kHeapProbe; ++i) {
    capture::HeapSlot& s = slots[((h >> 20) + i) & mask];
    uint64_t a = s.address.load(std::memory_order_relaxed);
    while (a == 0 || a == capture::kHeapTombstone) {
      if (s.address.compare_exchange_weak(a, address, std::memory_order_acq_rel)) {
        s.id.store(id, std::memory_order_release);
        uint32_t longest = g_max_probe.load(std::memory_order_relaxed);
        while (i > longest && !g_max_probe.compare_exchange_weak(longest, i)) {
        }
        return true;
      }
    }
  }
  if (f.fetch_sub(1) == 1) CountedDown(f, index);
  return false;
}

bool TableRemove(capture::HeapTableHeader* t, uint64_t address) {
  const uint64_t h = AddressHash(address);
  const uint32_t index = FilterIndex(address);
  std::atomic<uint16_t>& f = Filter(t)[index];
  if (f.load(std::memory_order_relaxed) == 0) return false;
  const uint32_t mask = t->slots - 1;
  capture::HeapSlot* slots = Slots(t);
  const uint32_t probes = g_max_probe.load(std::memory_order_relaxed) + 1;
  for (uint32_t i = 0; i < probes && i < capture::kHeapProbe; ++i) {
    capture::HeapSlot& s = slots[((h >> 20) + i) & mask];
    uint64_t a = s.address.load(std::memory_order_acquire);
    if (a == 0) return false;  // never used: the chain ends here
    if (a == address) {
      s.id.store(0, std::memory_order_release);
      s.address.store(capture::kHeapTombstone, std::memory_order_release);
      if (f.fetch_sub(1) == 1) CountedDown(f, index);
      return true;
    }
  }
  return false;
}

// Exponential with mean "rate" bytes (xorshift64*, seeded per thread).
int64_t DrawInterval() {
  uint64_t x = t_rng;
  if (x == 0) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    x = (static_cast<uint64_t>(ts.tv_nsec) << 20) ^ reinterpret_cast<uintptr_t>(&t_rng) ^
        0x9e3779b97f4a7c15ULL;
    if (x == 0) x = 1;
  }
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t_rng = x;
  const uint64_t r = (x * 0x2545f4914f6cdd1dULL) >> 11;          // 53 bits
  const double u = (static_cast<double>(r) + 1.0) * (1.0 / 9007199254740992.0);  // (0, 1]
  double v = -std::log(u) * static_cast<double>(g_rate);
  if (v < 1) v = 1;
  if (v > 1e15) v = 1e15;
  return static_cast<int64_t>(v);
}

// The general registers at this point of this (always inlined) function,
// in libunwind's order (capture_format.h); RIP is the label after the
// stores, inside the caller's body. Only callee-saved registers, RSP and
// RIP matter to the unwinder; the others are copied for completeness.
#define SS_CAPTURE_REGS(regs)                                                        \
  __asm__ __volatile__(                                                              \
      "movq %%rax, 0(%0)\n\t"                                                        \
      "movq %%rdx, 8(%0)\n\t"                                                        \
      "movq %%rcx, 16(%0)\n\t"                                                       \
      "movq %%rbx, 24(%0)\n\t"                                                       \
      "movq %%rsi, 32(%0)\n\t"                                                       \
      "movq %%rdi, 40(%0)\n\t"                                                       \
      "movq %%rbp, 48(%0)\n\t"                                                       \
      "movq %%rsp, 56(%0)\n\t"                                                       \
      "movq %%r8, 64(%0)\n\t"                                                        \
      "movq %%r9, 72(%0)\n\t"                                                        \
      "movq %%r10, 80(%0)\n\t"                                                       \
      "movq %%r11, 88(%0)\n\t"                                                       \
      "movq %%r12, 96(%0)\n\t"                                                       \
      "movq %%r13, 104(%0)\n\t"                                                      \
      "movq %%r14, 112(%0)\n\t"                                                      \
      "movq %%r15, 120(%0)\n\t"                                                      \
      "leaq 1f(%%rip), %%rax\n\t"                                                    \
      "movq %%rax, 128(%0)\n\t"                                                      \
      "1:\n\t"                                                                       \
      :                                                                              \
      : "r"(regs)                                                                    \
      : "rax", "memory")

// Writes the record. REQUIRES: t_busy and ts->in_handler held.
__attribute__((noinline)) void WriteRecord(ThreadState* ts, uint64_t address, size_t size,
                                           uint64_t id) {
  capture::SampleRecord* rec = ts->ring.TryBeginWrite();
  if (rec == nullptr) return;
  uint64_t regs[capture::kSnapshotRegs];
  SS_CAPTURE_REGS(regs);
  const uint64_t sp = regs[capture::kRegRsp];
  const uint64_t lo = ts->stack_lo.load(std::memory_order_relaxed);
  const uint64_t hi = ts->stack_hi.load(std::memory_order_relaxed);
  if (hi == 0 || sp < lo || sp >= hi) {
    ts->ring.header()->dropped_bad_stack.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  for (int i = 0; i < capture::kSnapshotRegs; ++i) rec->regs[i] = regs[i];
  const uint64_t avail = hi - sp;
  const uint32_t cap = ts->ring.stack_capacity();
  const uint32_t n = avail > cap ? cap : static_cast<uint32_t>(avail);
  __builtin_memcpy(ts->ring.StackOf(rec), reinterpret_cast<const void*>(sp), n);
  rec->stack_start = sp;
  rec->stack_size = n;
  rec->flags = avail > cap ? capture::kRecordStackCut : 0;
  rec->weight = 1;
  rec->tid = t_tid;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  rec->timestamp_ns = static_cast<int64_t>(now.tv_sec) * 1000000000LL + now.tv_nsec;
  rec->module_generation = ModuleGeneration();
  rec->kind = capture::kRecordAlloc;
  rec->reserved0 = 0;
  rec->alloc_size = size;
  rec->alloc_address = address;
  rec->alloc_id = id;
  rec->heap_rate = static_cast<uint64_t>(g_rate);
  rec->reserved1 = 0;
  rec->label_count = 0;  // labels travel on clock samples only
  ts->ring.CommitWrite();
}

}  // namespace

void SampleAllocation(void* p, size_t size) {
  const bool first = t_rng == 0;
  t_bytes_left = DrawInterval();
  if (first || !HeapSamplingOn()) return;  // the first draw only starts the count
  capture::HeapTableHeader* table = g_table.load(std::memory_order_acquire);
  if (table == nullptr) return;
  if (t_busy) {
    table->reentrant.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  t_busy = true;
  ThreadState* ts = t_state;
  if (ts == nullptr || ts->ring.header() == nullptr ||
      ts->tid.load(std::memory_order_relaxed) != t_tid) {
    // (stackstream's own threads are never sampled: not a loss)
    if (!IsAgentThread()) table->no_thread.fetch_add(1, std::memory_order_relaxed);
  } else if (int holder = 0;
             !ts->in_handler.compare_exchange_strong(holder, 2, std::memory_order_acquire)) {
    table->reentrant.fetch_add(1, std::memory_order_relaxed);  // inside a signal handler
  } else {
    const uint64_t address = reinterpret_cast<uintptr_t>(p);
    uint64_t id = g_next_id.fetch_add(1, std::memory_order_relaxed) + 1;
    // Into the table before the record is published: the agent must never
    // see a record whose id is not (yet) in the table and take it as freed.
    if (!TableInsert(table, address, id)) {
      table->table_full.fetch_add(1, std::memory_order_relaxed);
      id = 0;
    }
    const uint64_t head = ts->ring.header()->head.load(std::memory_order_relaxed);
    WriteRecord(ts, address, size, id);
    if (ts->ring.header()->head.load(std::memory_order_relaxed) == head) {
      // Not written (ring full or bad stack): nobody will know this id.
      if (id != 0) TableRemove(table, address);
      if (ts->ring.TryBeginWrite() == nullptr) {
        table->ring_full.fetch_add(1, std::memory_order_relaxed);
      }
    }
    ts->in_handler.store(0, std::memory_order_release);
  }
  t_busy = false;
}

void RecordFree(capture::HeapTableHeader* table, uint64_t address) {
  TableRemove(table, address);
}

namespace {
int g_table_fd = -1;
}  // namespace

int Start(int64_t rate) {
  g_rate = rate > 0 ? rate : 512 * 1024;
  const uint64_t bytes = capture::HeapTableBytes(kTableSlots, kFilterSlots);
  void* mem = nullptr;
  int fd = capture::CreateSharedMemfd("stackstream-heap", bytes, &mem);
  if (fd < 0) return -1;
  auto* t = new (mem) capture::HeapTableHeader;  // zero-filled memfd
  t->magic = capture::kHeapTableMagic;
  t->version = capture::kFormatVersion;
  t->slots = kTableSlots;
  t->filter_slots = kFilterSlots;
  g_table_fd = fd;
  g_table.store(t, std::memory_order_release);
  return fd;
}

void Enable() {
  if (g_table.load(std::memory_order_acquire) != nullptr) g_on.store(true, std::memory_order_release);
}

void TableGeometry(uint32_t* slots, uint32_t* filter_slots, uint64_t* bytes) {
  *slots = kTableSlots;
  *filter_slots = kFilterSlots;
  *bytes = capture::HeapTableBytes(kTableSlots, kFilterSlots);
}

void Stop() { g_on.store(false, std::memory_order_release); }

void ForgetInChild() {
  g_on.store(false, std::memory_order_relaxed);
  g_table.store(nullptr, std::memory_order_relaxed);  // the parent's: never touched again
  for (auto& word : g_present) word.store(0, std::memory_order_relaxed);  // its bits too
  g_max_probe.store(0, std::memory_order_relaxed);
  if (g_table_fd >= 0) close(g_table_fd);
  g_table_fd = -1;
  t_state = nullptr;
}

void SetCurrentThread(ThreadState* ts) {
  t_tid = ts != nullptr ? ts->tid.load(std::memory_order_relaxed) : 0;
  t_state = ts;
}

}  // namespace heap
}  // namespace agent
}  // namespace stackstream
