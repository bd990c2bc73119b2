// SampleRing::Create (host side): the ring lives in a memfd so that
// stackstream-agent can map it; see sample_ring.h.
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
  int fd = memfd_create("stackstream-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -1;
  // Sealed at its size: the agent maps it without fearing SIGBUS from a
  // shrink (it refuses rings without the seal).
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    close(fd);
    return -1;
  }
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    close(fd);
    return -1;
  }
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
