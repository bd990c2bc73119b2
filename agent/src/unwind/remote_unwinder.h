// RemoteUnwinder: unwinds a StackSnapshot (registers + a copy of the top of
// the stack, taken by the host's signal handler) into program counters with
// libunwind, in stackstream-agent, away from the host. The host may have
// exited or been killed by then: nothing is read from it.
//
// Memory in the copied stack range is read from the copy. Any other memory
// (.eh_frame_hdr, .eh_frame, code bytes libunwind looks at) is read only from
// the module FILES of the sample's ModuleSet: runtime address -> (module,
// PT_LOAD segment) -> file offset (address - segment.start +
// segment.file_offset, only within the segment's file_size: .bss reads fail)
// -> bytes from the ElfFileCache (shared by all unwinders, verified by
// build-id). DWARF CFI comes from .eh_frame_hdr/.eh_frame; where a frame has
// none, a frame-pointer step on the copied stack is tried.
//
// libunwind's caches (register rules by IP, per RemoteUnwinder) are flushed
// when Unwind() is called with a ModuleSet that lacks a module of the
// previous one (dlclose, or a sample older than a dlopen); a set that only
// adds modules keeps them.
//
// Thread-safety: not thread-safe; one instance per client process. The
// ElfFileCache may be shared by any number of unwinders and threads.
#pragma once

#include <cstdint>
#include <memory>

#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {

class ElfFileCache;
class ModuleSet;

class RemoteUnwinder {
 public:
  struct Stats {
    int64_t unwinds = 0;
    int64_t set_changes = 0;      // Unwind() with another ModuleSet than the previous call
    int64_t cache_flushes = 0;    // ... that dropped libunwind's caches
    int64_t modules_without_file = 0;  // modules whose file was unusable (per set)
    int64_t proc_info_lookups = 0;     // libunwind asked for a PC's unwind info
  };

  // "files" may be shared with other unwinders and the symbolizer; null: a
  // private cache.
  explicit RemoteUnwinder(std::shared_ptr<ElfFileCache> files = nullptr);
  ~RemoteUnwinder();
  RemoteUnwinder(const RemoteUnwinder&) = delete;
  RemoteUnwinder& operator=(const RemoteUnwinder&) = delete;

  // Writes up to "max_depth" PCs, LEAF FIRST (pcs[0] = interrupted RIP, then
  // return addresses), into "pcs". Returns the depth (>= 1 when RIP is
  // known; 0 on total failure). Sets "*truncated" when the stack had more
  // frames than "max_depth". "modules" describes the process when the
  // snapshot was taken; it must stay alive during the call.
  int Unwind(const ModuleSet& modules, const StackSnapshot& snapshot, uint64_t* pcs,
             int max_depth, bool* truncated);

  const Stats& stats() const;
  const std::shared_ptr<ElfFileCache>& files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agent
}  // namespace stackstream
