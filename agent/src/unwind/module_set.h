// ModuleSet: the modules of one process at one module generation, built from
// the capture::ModuleMessage records the host sent (capture_format.h). It
// describes where each module's file was mapped (load bias, PT_LOAD
// segments, .eh_frame_hdr) so that the agent can read the module's bytes from
// its FILE rather than from the live process: a host that exited or was
// killed is still unwound (RemoteUnwinder) and symbolized (Symbolizer).
//
// Every message is untrusted: FromMessages() validates magic, type, version,
// sizes, segment count and ranges, the path (NUL-terminated, absolute or
// capture::kVdsoPath), and
// skips (and counts) the bad ones. Segments that overlap an earlier one are
// ignored for address lookups.
//
// Thread-safety: immutable after construction; safe to share between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

// One module of a (possibly exited) process, from a capture::ModuleMessage.
struct LoadedModule {
  std::string path;          // as the host saw it (absolute), or capture::kVdsoPath
  std::string build_id;      // lower-case hex, "" when none
  uint64_t load_bias = 0, eh_frame_hdr = 0, eh_frame_hdr_size = 0, dev = 0, inode = 0;
  std::vector<capture::ModuleSegment> segments;  // PT_LOAD, runtime addresses
  uint64_t start = 0, end = 0;  // lowest..highest runtime address of the executable (PF_X)
                                // segment(s) (for the pprof mapping); 0, 0 when none
  uint64_t exec_file_offset = 0;  // file offset mapped at "start"

  // The segment containing "address", or nullptr.
  const capture::ModuleSegment* SegmentOf(uint64_t address) const;
  // Same file, same place: path, build-id, dev/inode, bias and segments equal.
  bool SameAs(const LoadedModule& other) const;
};

class ModuleSet {
 public:
  // Validates each message (magic/type/version/size/segment_count/path
  // NUL-terminated and absolute or "[vdso]"; bad ones are skipped and counted in
  // "*rejected"). "root" is prepended when opening files (e.g.
  // "/proc/1234/root" for a process in another mount namespace; "" = as is).
  static std::shared_ptr<const ModuleSet> FromMessages(const std::vector<std::string>& raw_messages,
                                                       const std::string& root,
                                                       int* rejected = nullptr);
  // A set from modules built some other way (tests; perf-based attach).
  static std::shared_ptr<const ModuleSet> FromModules(std::vector<LoadedModule> modules,
                                                      const std::string& root);

  // Parses one kModule message. False when it is malformed.
  static bool ParseMessage(const void* data, size_t size, LoadedModule* out);

  // The module with a PT_LOAD segment containing "address", or nullptr.
  const LoadedModule* Find(uint64_t address) const;

  struct Hit {
    const LoadedModule* module = nullptr;        // null when no module contains the address
    const capture::ModuleSegment* segment = nullptr;
    uint32_t index = 0;                          // into modules()
  };
  // The module and PT_LOAD segment containing "address".
  Hit Lookup(uint64_t address) const;

  const std::vector<LoadedModule>& modules() const { return modules_; }
  const std::string& root() const { return root_; }
  // Unique per ModuleSet object in this process (never reused, unlike the
  // object's address): tells a cache that it is looking at another set.
  uint64_t serial() const { return serial_; }

  ModuleSet(const ModuleSet&) = delete;
  ModuleSet& operator=(const ModuleSet&) = delete;

 private:
  ModuleSet(std::vector<LoadedModule> modules, std::string root);
  struct Range {
    uint64_t start, end;  // [start, end)
    uint32_t module, segment;
  };
  std::vector<LoadedModule> modules_;
  std::vector<Range> ranges_;  // sorted by start, non-overlapping
  std::string root_;
  uint64_t serial_;
};

// Lower-case hex of "size" bytes.
std::string HexString(const uint8_t* bytes, size_t size);

}  // namespace agent
}  // namespace stackstream
