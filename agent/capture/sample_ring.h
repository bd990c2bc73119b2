// SampleRing: a preallocated single-producer / single-consumer ring of
// fixed-size sample records (registers + a copy of the top of the stack).
//
// Thread-safety: exactly one producer (the signal handler of the one thread
// the ring belongs to; it cannot re-enter itself) and one consumer (the
// drain thread). The producer side (TryBeginWrite / CommitWrite) is
// async-signal-safe: no locks, no allocation, no system calls. When the ring
// is full the producer drops the sample (the caller counts it).
// Memory comes from mmap at construction and is never returned (rings are
// pooled and reused; a late signal may still touch one).
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {

struct SampleRecord {
  uint64_t regs[kSnapshotRegs];
  uint64_t stack_start;   // SP at the interruption
  uint32_t stack_size;    // bytes copied into stack[]
  uint32_t weight;        // 1 + timer overruns
  int32_t tid;
  uint32_t flags;         // kRecordStackCut
  int64_t timestamp_ns;   // CLOCK_REALTIME
  uint64_t reserved;
  // Followed by "stack_capacity" bytes of stack copy.
  uint8_t* stack() { return reinterpret_cast<uint8_t*>(this + 1); }
  const uint8_t* stack() const { return reinterpret_cast<const uint8_t*>(this + 1); }
};
static_assert(sizeof(SampleRecord) % 16 == 0, "keep the stack copy 16-byte aligned");

constexpr uint32_t kRecordStackCut = 1;  // the stack was longer than the copy

class SampleRing {
 public:
  // "slots" is rounded up to a power of two. Returns false (and leaves the
  // ring empty, every write dropping) if memory cannot be mapped.
  bool Init(uint32_t slots, uint32_t stack_capacity) {
    uint32_t n = 1;
    while (n < slots) n <<= 1;
    slot_bytes_ = (sizeof(SampleRecord) + stack_capacity + 63) & ~size_t{63};
    size_t bytes = slot_bytes_ * n;
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    base_ = static_cast<uint8_t*>(mem);
    mask_ = n - 1;
    stack_capacity_ = stack_capacity;
    return true;
  }

  uint32_t capacity() const { return base_ == nullptr ? 0 : mask_ + 1; }
  uint32_t stack_capacity() const { return stack_capacity_; }

  // Producer. Async-signal-safe. Returns the slot to fill, or nullptr when
  // the ring is full (or was never initialized).
  SampleRecord* TryBeginWrite() {
    if (base_ == nullptr) return nullptr;
    uint64_t head = head_.load(std::memory_order_relaxed);
    uint64_t tail = tail_.load(std::memory_order_acquire);
    if (head - tail > mask_) return nullptr;
    return Slot(head);
  }
  // Producer. Async-signal-safe. Publishes the slot from TryBeginWrite.
  void CommitWrite() {
    head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Consumer: the oldest record, or nullptr when empty.
  const SampleRecord* Peek() const {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return nullptr;
    return Slot(tail);
  }
  // Consumer: frees the record returned by Peek.
  void Pop() { tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // Consumer: drops everything (e.g. in a forked child: parent's samples).
  void Clear() { tail_.store(head_.load(std::memory_order_acquire), std::memory_order_release); }

  bool Empty() const {
    return tail_.load(std::memory_order_acquire) == head_.load(std::memory_order_acquire);
  }

 private:
  SampleRecord* Slot(uint64_t index) const {
    return reinterpret_cast<SampleRecord*>(base_ + (index & mask_) * slot_bytes_);
  }

  uint8_t* base_ = nullptr;
  size_t slot_bytes_ = 0;
  uint32_t mask_ = 0;
  uint32_t stack_capacity_ = 0;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer
};

}  // namespace agent
}  // namespace stackstream
