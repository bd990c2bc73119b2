// ModuleMap: the executable mappings of this process (from /proc/self/maps),
// each with its file path, load range, file offset and GNU build-id.
//
// Modules are shared_ptr<const Module>: whoever resolved a PC against a module
// may keep it after the module is unloaded (dlclose) and the map refreshed.
//
// Not thread-safe: used by the drain thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/status.h"

namespace stackstream {
namespace agent {
namespace pipeline {

struct Module {
  std::string path;      // file path, or "[vdso]" etc. for special mappings
  uint64_t start = 0;    // executable mapping [start, end)
  uint64_t end = 0;
  uint64_t file_offset = 0;  // file offset mapped at "start"
  uint64_t inode = 0;
  std::string build_id;  // GNU build-id, lower-case hex; empty when unknown

  // Offset in the file of the byte mapped at "address" (start <= address < end).
  uint64_t FileOffset(uint64_t address) const { return address - start + file_offset; }
  // "libfoo.so+0x1f00": the name used when no symbol covers "address".
  std::string FallbackName(uint64_t address) const;
};

class ModuleMap {
 public:
  // "maps_path" is the maps file to read (tests pass their own).
  explicit ModuleMap(std::string maps_path = "/proc/self/maps");

  // Re-reads the maps file. Modules that are unchanged keep their Module
  // object (and cached build-id).
  Status Refresh();

  // The module whose executable mapping contains "address", or null.
  std::shared_ptr<const Module> Find(uint64_t address) const;

  const std::vector<std::shared_ptr<const Module>>& modules() const { return modules_; }
  int64_t refresh_count() const { return refresh_count_; }

 private:
  std::string maps_path_;
  std::vector<std::shared_ptr<const Module>> modules_;  // sorted by start
  std::map<std::pair<uint64_t, std::string>, std::string> build_ids_;  // (inode, path)
  int64_t refresh_count_ = 0;
};

// Reads the GNU build-id (NT_GNU_BUILD_ID) of the ELF file at "path" as
// lower-case hex. Empty when the file has none or cannot be read.
std::string ReadBuildId(const std::string& path);

// Parses one /proc/PID/maps line. Returns false for lines that are not
// executable mappings. Exposed for tests.
bool ParseMapsLine(const std::string& line, Module* module);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
