// Symbolizer: program counters of this process -> module, file offset,
// function names (demangled), file:line and inline frames.
//
// Names come from the ELF symbol tables (.symtab, .dynsym) through elfutils
// libdwfl; lines and inlined frames from DWARF where present; a PC without a
// symbol gets "module+0xoffset". Results are cached per PC (bounded: the cache
// is cleared when it exceeds Options::max_cached_pcs). The module map is
// re-read when a PC falls outside every known module (at once if a library
// was loaded or unloaded since the last refresh, else at most once per
// Options::min_refresh_interval_ms) and on RefreshModules(). A module that is
// unloaded keeps the entries already resolved in it.
//
// Not thread-safe: one instance, used by the drain thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/module_map.h"

namespace stackstream {
namespace agent {
namespace pipeline {

struct SymbolizedFrame {
  std::string function;     // demangled, or "module+0x1f00"
  std::string system_name;  // mangled name when different from "function", else empty
  std::string file;         // source file; empty when unknown
  int64_t line = 0;         // 0 when unknown
  int64_t start_line = 0;   // line the function starts at; 0 when unknown
};

struct SymbolizedPc {
  uint64_t address = 0;                  // the address looked up
  std::shared_ptr<const Module> module;  // null when in no known module
  uint64_t file_offset = 0;              // offset of "address" in module's file
  std::vector<SymbolizedFrame> frames;   // inlined callee first; at least one
};

class Symbolizer {
 public:
  struct Options {
    size_t max_cached_pcs = 1 << 16;
    int64_t min_refresh_interval_ms = 100;
    std::string maps_path = "/proc/self/maps";
    // Source lines and inline frames for system libraries (/lib, /usr/lib)?
    // Their names come from the symbol tables either way. Reading their
    // separate debug files (e.g. libc6-dbg) costs ~10 MiB and tens of ms of
    // decompression per process, so it is off unless
    // STACKSTREAM_SYSTEM_LINES=1.
    bool system_library_lines = false;
  };

  Symbolizer();
  explicit Symbolizer(Options options);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Resolves "address" (for a return address, pass the return address - 1).
  // The result stays valid while the caller holds it.
  std::shared_ptr<const SymbolizedPc> Symbolize(uint64_t address);

  // Re-reads the module map now (e.g. after dlopen/dlclose).
  void RefreshModules();

  const ModuleMap& modules() const { return modules_; }
  size_t cached_pcs() const { return cache_.size(); }
  int64_t cache_evictions() const { return cache_evictions_; }

 private:
  struct Dwfl;  // wraps elfutils' Dwfl session
  std::shared_ptr<SymbolizedPc> Resolve(uint64_t address);
  void RefreshLocked(bool force);

  Options options_;
  ModuleMap modules_;
  std::unique_ptr<Dwfl> dwfl_;
  std::unordered_map<uint64_t, std::shared_ptr<const SymbolizedPc>> cache_;
  int64_t last_refresh_ms_ = -1;
  unsigned long long loader_generation_ = 0;  // dlopen/dlclose count at refresh
  int64_t cache_evictions_ = 0;
};

// abi::__cxa_demangle, or "name" itself when it is not a mangled C++ name.
std::string Demangle(const char* name);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
