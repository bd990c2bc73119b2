#include "unwind/safe_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

namespace stackstream {
namespace agent {
namespace unwind_internal {

SafeMemory::SafeMemory(size_t max_cached_pages) : slots_(max_cached_pages) {}

SafeMemory::~SafeMemory() {
  if (pipe_fds_[0] >= 0) close(pipe_fds_[0]);
  if (pipe_fds_[1] >= 0) close(pipe_fds_[1]);
}

void SafeMemory::Flush() {
  for (Slot& s : slots_) s.page = ~uint64_t{0};
  last_page_ = ~uint64_t{0};
  last_data_ = nullptr;
}

bool SafeMemory::RawRead(uint64_t addr, void* out, size_t len) {
  if (len == 0) return true;
  if (addr + len < addr) return false;
  if (!use_pipe_) {
    struct iovec local = {out, len};
    struct iovec remote = {reinterpret_cast<void*>(addr), len};
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n == static_cast<ssize_t>(len)) return true;
    if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return false;
    use_pipe_ = true;  // e.g. refused by a seccomp filter: fall back for good
  }
  // Fallback: the kernel copies from "addr" into a pipe and reports EFAULT
  // instead of faulting. Chunks stay below the pipe capacity.
  if (pipe_fds_[0] < 0 && pipe2(pipe_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    pipe_fds_[0] = pipe_fds_[1] = -1;
    return false;
  }
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    size_t chunk = len < kPageSize ? len : kPageSize;
    ssize_t w = write(pipe_fds_[1], reinterpret_cast<const void*>(addr), chunk);
    if (w <= 0) return false;
    ssize_t r = read(pipe_fds_[0], dst, static_cast<size_t>(w));
    if (r != w) return false;
    dst += w;
    addr += static_cast<uint64_t>(w);
    len -= static_cast<size_t>(w);
  }
  return true;
}

const uint8_t* SafeMemory::GetPage(uint64_t page) {
  Slot& s = slots_[(page / kPageSize) & (slots_.size() - 1)];
  if (s.page != page) {
    ++page_misses_;
    if (!s.data) s.data.reset(new uint8_t[kPageSize]);
    s.page = ~uint64_t{0};
    if (!RawRead(page, s.data.get(), kPageSize)) return nullptr;
    s.page = page;
  }
  last_page_ = page;
  last_data_ = s.data.get();
  return s.data.get();
}

bool SafeMemory::Read(uint64_t addr, void* out, size_t len, bool cacheable) {
  if (!cacheable || slots_.empty()) {
    ++uncached_reads_;
    return RawRead(addr, out, len);
  }
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    uint64_t page = addr & ~(uint64_t{kPageSize} - 1);
    size_t off = static_cast<size_t>(addr - page);
    size_t n = kPageSize - off < len ? kPageSize - off : len;
    const uint8_t* data = GetPage(page);
    if (data == nullptr) return false;
    memcpy(dst, data + off, n);
    dst += n;
    addr += n;
    len -= n;
  }
  return true;
}

}  // namespace unwind_internal
}  // namespace agent
}  // namespace stackstream
