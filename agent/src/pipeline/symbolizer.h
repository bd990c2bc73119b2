// Symbolizer: program counters of a host process -> module (the pprof
// mapping), file offset, function names (demangled), file:line and inline
// frames. It reads the module FILES named by the sample's ModuleSet, never
// the host, so a host that exited or was killed is still symbolized.
//
// Shared by all client processes: parsed files and resolved frames are keyed
// by the module FILE (ElfFileCache identity: dev/inode, verified by build-id)
// and the file-relative address (vaddr = address - load bias), so identical
// modules in different processes (whatever their ASLR bias) share one parse
// and one cache entry.
//
// Names come from the ELF symbol tables (.symtab, .dynsym) through elfutils
// libdwfl (one Dwfl per file, the file reported at bias 0 and read with
// pread, not mmap); lines and inlined frames from DWARF where present,
// including separate debug files found by build-id under
// /usr/lib/debug/.build-id (never debuginfod). Lines of system libraries only
// with Options::system_library_lines. A PC without a symbol gets
// "module+0xoffset" (file offset); a PC in no module "[unknown]+0xaddress".
// A module whose file is missing or is not the module's (build-id mismatch)
// still gets its mapping (path, build-id) and "module+0xoffset" names, so a
// server can symbolize it later.
//
// Bounds: at most Options::max_cached_pcs resolved (file, vaddr) entries
// (the cache is cleared when full, counted in cache_evictions()), at most
// Options::max_files parsed files (least recently used out), at most
// Options::max_mappings mapping objects.
//
// Thread-safety: not thread-safe; stackstream-agent calls it from its one
// server thread. The ElfFileCache it uses may be shared with unwinders.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace stackstream {
namespace agent {

class ElfFile;
class ElfFileCache;
class ModuleSet;
struct LoadedModule;

namespace pipeline {

// A module as the pprof Mapping describes it: its executable segment(s).
struct Module {
  std::string path;      // as the host saw it
  uint64_t start = 0;    // executable mapping [start, end) (runtime addresses)
  uint64_t end = 0;
  uint64_t file_offset = 0;  // file offset mapped at "start"
  uint64_t inode = 0;
  std::string build_id;  // GNU build-id, lower-case hex; empty when unknown

  // "libfoo.so+0x1f00": the name used when no symbol covers the byte at
  // "file_offset" of this module's file.
  std::string FallbackName(uint64_t file_offset) const;
};

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
    size_t max_files = 256;
    size_t max_mappings = 1 << 14;
    // Source lines and inline frames for system libraries (/lib, /usr/lib)?
    // Their names come from the symbol tables either way. Reading their
    // separate debug files (e.g. libc6-dbg) costs ~10 MiB and tens of ms of
    // decompression per library, so it is off unless
    // STACKSTREAM_SYSTEM_LINES=1.
    bool system_library_lines = false;
    // Where separate debug files are looked up by build-id.
    std::string debug_dir = "/usr/lib/debug/.build-id";
    // The module files; share the unwinders' cache. Null: a private one.
    std::shared_ptr<ElfFileCache> files;
  };

  Symbolizer();
  explicit Symbolizer(Options options);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Resolves "address" of the process "modules" describes (for a return
  // address, pass the return address - 1). The result stays valid while the
  // caller holds it; "modules" need not outlive the call.
  std::shared_ptr<const SymbolizedPc> Symbolize(const ModuleSet& modules, uint64_t address);

  // Resolved (file, vaddr) entries cached now.
  size_t cached_pcs() const { return frames_.size(); }
  int64_t cache_evictions() const { return cache_evictions_; }
  // Files parsed (Dwfl sessions) kept now.
  size_t parsed_files() const { return files_.size(); }
  const std::shared_ptr<ElfFileCache>& files() const { return elf_files_; }

  struct FileEntry;  // internal: one parsed file

 private:
  struct PairHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
      return std::hash<uint64_t>()(p.first * 0x9e3779b97f4a7c15ULL ^ p.second);
    }
  };
  using Frames = std::vector<SymbolizedFrame>;

  FileEntry* EntryFor(const LoadedModule& module, const std::string& root);
  std::shared_ptr<const Module> MappingFor(const LoadedModule& module, uint64_t address);
  std::shared_ptr<const Frames> Resolve(FileEntry* entry, uint64_t vaddr,
                                        const Module& mapping, uint64_t file_offset);

  Options options_;
  std::shared_ptr<ElfFileCache> elf_files_;
  std::unordered_map<uint64_t, std::unique_ptr<FileEntry>> files_;  // by ElfFile::id()
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::shared_ptr<const Frames>, PairHash>
      frames_;  // (ElfFile::id(), vaddr)
  std::unordered_map<std::string, std::shared_ptr<const Module>> mappings_;
  uint64_t clock_ = 0;
  int64_t cache_evictions_ = 0;
};

// abi::__cxa_demangle, or "name" itself when it is not a mangled C++ name.
std::string Demangle(const char* name);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
