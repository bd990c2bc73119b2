// RemoteUnwinder: unwinds a StackSnapshot into program counters with
// libunwind, away from the signal handler (on the drain thread). Memory in the
// copied stack range is read from the copy; any other memory (e.g. .eh_frame)
// is read in a way that cannot fault (process_vm_readv on our own pid, or an
// equivalent checked read). Unwind info is found per module via
// dl_iterate_phdr / .eh_frame_hdr (and .debug_frame where needed), cached per
// module, and dropped by InvalidateModules() after dlopen/dlclose.
//
// Not thread-safe: one instance per drain thread.
#pragma once

#include <cstdint>
#include <memory>

#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {

class RemoteUnwinder {
 public:
  RemoteUnwinder();
  ~RemoteUnwinder();
  RemoteUnwinder(const RemoteUnwinder&) = delete;
  RemoteUnwinder& operator=(const RemoteUnwinder&) = delete;

  // Writes up to "max_depth" PCs, LEAF FIRST (pcs[0] = interrupted RIP, then
  // return addresses), into "pcs". Returns the depth (>= 1 when RIP is
  // known; 0 on total failure). Sets "*truncated" when the stack had more
  // frames than "max_depth".
  int Unwind(const StackSnapshot& snapshot, uint64_t* pcs, int max_depth, bool* truncated);

  // Forget cached module/unwind info (call after dlopen/dlclose).
  void InvalidateModules();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace agent
}  // namespace stackstream
