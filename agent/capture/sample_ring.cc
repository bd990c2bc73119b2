// SampleRing::Create (host side): the ring lives in a memfd so that
// stackstream-agent can map it; see sample_ring.h.
#include "capture/shared_memfd.h"
#include "capture/sample_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>

namespace stackstream {
namespace capture {

int SampleRing::Create(uint32_t slots, uint32_t stack_capacity, uint32_t ring_id) {
  uint32_t n = 1;
  while (n < slots) n <<= 1;
  uint32_t slot_bytes = static_cast<uint32_t>((sizeof(SampleRecord) + stack_capacity + 63) & ~size_t{63});
  uint64_t bytes = RingBytes(n, slot_bytes);
  void* mem = nullptr;
  int fd = CreateSharedMemfd("stackstream-ring", bytes, &mem);
  if (fd < 0) return -1;
  auto* h = new (mem) RingHeader;  // the memfd is zero-filled: atomics start at 0
  h->magic = kRingMagic;
  h->version = kFormatVersion;
  h->header_bytes = kRingHeaderBytes;
  h->slots = n;
  h->slot_bytes = slot_bytes;
  h->stack_capacity = stack_capacity;
  h->ring_id = ring_id;
  if (!Attach(mem, bytes)) {
    munmap(mem, bytes);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace capture
}  // namespace stackstream
