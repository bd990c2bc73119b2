// SafeMemory: reads this process's own memory in ways that cannot fault
// (process_vm_readv on our own pid; a pipe round trip where that syscall is
// refused), with a small direct-mapped cache of whole pages for memory that
// does not change while a module stays loaded (read-only PT_LOAD segments:
// .eh_frame, .eh_frame_hdr, code). Used by RemoteUnwinder on the drain thread.
//
// Not thread-safe: one instance per RemoteUnwinder. Flush() after a module
// may have been unloaded (stale pages would describe the old module).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace stackstream {
namespace agent {
namespace unwind_internal {

class SafeMemory {
 public:
  static constexpr size_t kPageSize = 4096;
  // "max_cached_pages" must be a power of two; pages are allocated lazily.
  explicit SafeMemory(size_t max_cached_pages = 512);
  ~SafeMemory();
  SafeMemory(const SafeMemory&) = delete;
  SafeMemory& operator=(const SafeMemory&) = delete;

  // Copies [addr, addr + len) into "out". Returns false (and leaves "out"
  // unspecified) if any byte is unreadable. With "cacheable", whole pages are
  // read once and served from the cache afterwards.
  bool Read(uint64_t addr, void* out, size_t len, bool cacheable);

  // Fast path for one 8-byte word from cacheable memory.
  bool ReadWordCached(uint64_t addr, uint64_t* out) {
    uint64_t page = addr & ~(uint64_t{kPageSize} - 1);
    if (page == last_page_ && (addr & (kPageSize - 1)) <= kPageSize - 8) {
      __builtin_memcpy(out, last_data_ + (addr - page), 8);
      return true;
    }
    return Read(addr, out, 8, true);
  }

  // Drops every cached page.
  void Flush();

  uint64_t page_misses() const { return page_misses_; }
  uint64_t uncached_reads() const { return uncached_reads_; }

 private:
  struct Slot {
    uint64_t page = ~uint64_t{0};
    std::unique_ptr<uint8_t[]> data;
  };
  const uint8_t* GetPage(uint64_t page);
  bool RawRead(uint64_t addr, void* out, size_t len);

  std::vector<Slot> slots_;
  uint64_t last_page_ = ~uint64_t{0};
  const uint8_t* last_data_ = nullptr;
  int pipe_fds_[2] = {-1, -1};
  bool use_pipe_ = false;
  uint64_t page_misses_ = 0;
  uint64_t uncached_reads_ = 0;
};

}  // namespace unwind_internal
}  // namespace agent
}  // namespace stackstream
