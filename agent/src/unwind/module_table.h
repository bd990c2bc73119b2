// ModuleTable: a snapshot of the loaded modules (dl_iterate_phdr): their
// PT_LOAD ranges and where their .eh_frame_hdr lies, for RemoteUnwinder.
// Build() takes the loader lock (through dl_iterate_phdr), so it must never be
// called from a signal handler; the drain thread calls it.
//
// Not thread-safe: one instance per RemoteUnwinder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace stackstream {
namespace agent {
namespace unwind_internal {

struct Module {
  std::string name;            // dlpi_name ("" for the main program)
  uint64_t load_bias = 0;      // dlpi_addr
  uint64_t eh_frame_hdr = 0;   // runtime address of PT_GNU_EH_FRAME, 0 if none
  uint64_t eh_frame_hdr_size = 0;
  // Parsed lazily from .eh_frame_hdr (see RemoteUnwinder):
  int hdr_state = 0;           // 0 not parsed, 1 usable, -1 unusable
  uint64_t table_data = 0;     // runtime address of the binary search table
  uint64_t fde_count = 0;
};

struct Segment {
  uint64_t start = 0;  // runtime address range [start, end)
  uint64_t end = 0;
  uint32_t flags = 0;  // PF_R / PF_W / PF_X
  uint32_t module = 0; // index into ModuleTable::modules()
};

class ModuleTable {
 public:
  // Replaces the table with the modules loaded now.
  void Build();

  // The segment containing "addr", or nullptr.
  const Segment* Find(uint64_t addr) const;

  Module& module(uint32_t i) { return modules_[i]; }
  const std::vector<Module>& modules() const { return modules_; }
  bool empty() const { return segments_.empty(); }
  // dl_iterate_phdr's load/unload counters when the table was built.
  uint64_t adds() const { return adds_; }
  uint64_t subs() const { return subs_; }

 private:
  std::vector<Module> modules_;
  std::vector<Segment> segments_;  // sorted by start, non-overlapping
  uint64_t adds_ = 0;
  uint64_t subs_ = 0;
};

}  // namespace unwind_internal
}  // namespace agent
}  // namespace stackstream
