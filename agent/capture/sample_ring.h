// SampleRing: a view over one ring in shared memory (capture_format.h):
// fixed-size SampleRecords (registers + a copy of the top of the stack).
//
// Thread-safety: exactly one producer (the signal handler of the one thread
// the ring belongs to; it cannot re-enter itself) and one consumer (the
// agent process). The producer side (TryBeginWrite / CommitWrite) is
// async-signal-safe: no locks, no allocation, no system calls. When the ring
// is full the producer drops the sample (the caller counts it).
//
// The host creates the memory (Create: memfd + mmap, never unmapped: a late
// signal may still touch it; rings are pooled and reused); the agent maps
// the fd it was handed and attaches with Attach, which validates the header
// as untrusted input.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace capture {

class SampleRing {
 public:
  // Host: creates a memfd ring of "slots" (rounded up to a power of two)
  // records of up to "stack_capacity" stack bytes. Returns the memfd (the
  // caller hands it to the agent and keeps it), or -1 (ring unusable: every
  // write drops).
  int Create(uint32_t slots, uint32_t stack_capacity, uint32_t ring_id);

  // Agent: attaches to a mapping of "bytes" bytes at "base" (MAP_SHARED of
  // the fd the host sent). Returns false if the header is not a valid ring
  // of that size.
  bool Attach(void* base, uint64_t bytes) {
    if (base == nullptr || bytes < kRingHeaderBytes) return false;
    auto* h = static_cast<RingHeader*>(base);
    if (h->magic != kRingMagic || h->version != kFormatVersion ||
        h->header_bytes != kRingHeaderBytes || h->slots == 0 ||
        (h->slots & (h->slots - 1)) != 0 || h->slots > (1u << 16) ||
        h->slot_bytes % 64 != 0 ||
        h->slot_bytes < sizeof(SampleRecord) + h->stack_capacity ||
        h->stack_capacity > (1u << 20) || RingBytes(h->slots, h->slot_bytes) > bytes) {
      return false;
    }
    header_ = h;
    base_ = static_cast<uint8_t*>(base) + kRingHeaderBytes;
    mask_ = h->slots - 1;
    slot_bytes_ = h->slot_bytes;
    stack_capacity_ = h->stack_capacity;
    return true;
  }

  bool valid() const { return header_ != nullptr; }
  RingHeader* header() const { return header_; }
  uint32_t capacity() const { return header_ == nullptr ? 0 : mask_ + 1; }
  uint32_t stack_capacity() const { return stack_capacity_; }

  // Producer. Async-signal-safe. Returns the slot to fill, or nullptr when
  // the ring is full (or was never created).
  SampleRecord* TryBeginWrite() {
    if (header_ == nullptr) return nullptr;
    uint64_t head = header_->head.load(std::memory_order_relaxed);
    uint64_t tail = header_->tail.load(std::memory_order_acquire);
    if (head - tail > mask_) return nullptr;
    return Slot(head);
  }
  uint8_t* StackOf(SampleRecord* rec) { return reinterpret_cast<uint8_t*>(rec + 1); }
  // Producer. Async-signal-safe. Publishes the slot from TryBeginWrite.
  void CommitWrite() {
    header_->head.store(header_->head.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
  }

  // Consumer: the oldest record, or nullptr when empty. The producer owns
  // the memory too: copy what you need and check it (stack_size may lie).
  const SampleRecord* Peek() const {
    if (header_ == nullptr) return nullptr;
    uint64_t tail = header_->tail.load(std::memory_order_relaxed);
    uint64_t head = header_->head.load(std::memory_order_acquire);
    if (tail == head) return nullptr;
    if (head - tail > uint64_t{mask_} + 1) {
      // A corrupt head (the host wrote garbage): skip to it.
      header_->tail.store(head, std::memory_order_release);
      return nullptr;
    }
    return Slot(tail);
  }
  const uint8_t* StackOf(const SampleRecord* rec) const {
    return reinterpret_cast<const uint8_t*>(rec + 1);
  }
  // Consumer: frees the record returned by Peek.
  void Pop() {
    header_->tail.store(header_->tail.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
  }

  bool Empty() const {
    if (header_ == nullptr) return true;
    return header_->tail.load(std::memory_order_acquire) ==
           header_->head.load(std::memory_order_acquire);
  }

 private:
  SampleRecord* Slot(uint64_t index) const {
    return reinterpret_cast<SampleRecord*>(base_ + (index & mask_) * slot_bytes_);
  }

  RingHeader* header_ = nullptr;
  uint8_t* base_ = nullptr;
  uint32_t mask_ = 0;
  uint32_t slot_bytes_ = 0;
  uint32_t stack_capacity_ = 0;
};

}  // namespace capture
}  // namespace stackstream
