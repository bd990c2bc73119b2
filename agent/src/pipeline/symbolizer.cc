#include "pipeline/symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"

namespace stackstream {
namespace agent {
namespace pipeline {

// One parsed module file: a Dwfl session with the file reported at bias 0.
struct Symbolizer::FileEntry {
  std::shared_ptr<const ElfFile> file;
  ::Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  Elf* pending_elf = nullptr;  // handed to libdwfl by FindElf
  int pending_fd = -1;
  std::vector<uint8_t> image;  // the Elf's bytes when it is in memory (outlives dwfl)
  bool system_library = false;
  std::string debug_dir;
  uint64_t last_used = 0;

  ~FileEntry() {
    if (dwfl != nullptr) dwfl_end(dwfl);
    if (pending_elf != nullptr) elf_end(pending_elf);
    if (pending_fd >= 0) close(pending_fd);
  }
};

namespace {

// libdwfl asks for the module's main ELF file: the one we opened (read with
// pread through ELF_C_READ, so a file truncated under us fails reads instead
// of faulting as an mmap would).
int FindElf(Dwfl_Module*, void** userdata, const char*, Dwarf_Addr, char** file_name, Elf** elfp) {
  auto* entry = static_cast<Symbolizer::FileEntry*>(*userdata);
  if (entry == nullptr || entry->pending_elf == nullptr) return -1;
  *elfp = entry->pending_elf;
  *file_name = strdup(entry->file->opened_path().c_str());
  int fd = entry->pending_fd;
  entry->pending_elf = nullptr;  // libdwfl owns them now
  entry->pending_fd = -1;
  return fd;
}

// Separate debug info only from the local build-id directory: never through
// debuginfod (no network access, no surprise latency).
int FindLocalDebuginfo(Dwfl_Module* mod, void** userdata, const char*, Dwarf_Addr, const char*,
                       const char*, GElf_Word, char** debuginfo_file_name) {
  auto* entry = static_cast<Symbolizer::FileEntry*>(*userdata);
  if (entry == nullptr || entry->debug_dir.empty()) return -1;
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  int len = dwfl_module_build_id(mod, &bits, &vaddr);
  if (len <= 1) return -1;
  std::string hex = HexString(bits, static_cast<size_t>(len));
  std::string path = entry->debug_dir + "/" + hex.substr(0, 2) + "/" + hex.substr(2) + ".debug";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  *debuginfo_file_name = strdup(path.c_str());
  return fd;
}

const Dwfl_Callbacks kCallbacks = {
    FindElf,
    FindLocalDebuginfo,
    nullptr,
    nullptr,
};

std::string DieName(Dwarf_Die* die, std::string* system_name) {
  Dwarf_Attribute attr;
  const char* linkage = nullptr;
  if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) != nullptr ||
      dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr) != nullptr) {
    linkage = dwarf_formstring(&attr);
  }
  if (linkage != nullptr) {
    std::string demangled = Demangle(linkage);
    if (demangled != linkage) *system_name = linkage;
    return demangled;
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr) != nullptr) {
    const char* name = dwarf_formstring(&attr);
    if (name != nullptr) return name;
  }
  return "";
}

int64_t DeclLine(Dwarf_Die* die) {
  int line = 0;
  if (dwarf_decl_line(die, &line) == 0) return line;
  return 0;
}

// Shared objects installed by the system, as opposed to the program's own.
bool IsSystemLibrary(const std::string& path) {
  for (const char* prefix : {"/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"}) {
    if (path.compare(0, strlen(prefix), prefix) == 0) return path.find(".so") != std::string::npos;
  }
  return false;
}

std::string UnknownName(uint64_t address) {
  char buf[40];
  snprintf(buf, sizeof buf, "[unknown]+0x%" PRIx64, address);
  return buf;
}

}  // namespace

std::string Module::FallbackName(uint64_t offset) const {
  std::string base = path;
  size_t slash = base.rfind('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  if (base.empty()) base = "[unknown]";
  char buf[32];
  snprintf(buf, sizeof buf, "+0x%" PRIx64, offset);
  return base + buf;
}

std::string Demangle(const char* name) {
  if (name == nullptr) return "";
  if (name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) {
    free(out);
    return name;
  }
  std::string result(out);
  free(out);
  return result;
}

Symbolizer::Symbolizer() : Symbolizer(Options()) {}

Symbolizer::Symbolizer(Options options)
    : options_(std::move(options)), elf_files_(options_.files) {
  if (elf_files_ == nullptr) elf_files_ = std::make_shared<ElfFileCache>();
  elf_version(EV_CURRENT);
}

Symbolizer::~Symbolizer() = default;

Symbolizer::FileEntry* Symbolizer::EntryFor(const LoadedModule& module, const std::string& root) {
  std::shared_ptr<const ElfFile> file = elf_files_->Get(module, root);
  if (file == nullptr) return nullptr;
  auto it = files_.find(file->id());
  if (it != files_.end()) {
    it->second->last_used = ++clock_;
    return it->second.get();
  }
  while (!files_.empty() && files_.size() >= options_.max_files) {
    auto oldest = files_.begin();
    for (auto f = files_.begin(); f != files_.end(); ++f) {
      if (f->second->last_used < oldest->second->last_used) oldest = f;
    }
    files_.erase(oldest);
  }
  auto entry = std::make_unique<FileEntry>();
  FileEntry* e = entry.get();
  e->file = file;
  e->system_library = IsSystemLibrary(module.path);
  e->debug_dir = options_.debug_dir;
  e->last_used = ++clock_;
  files_.emplace(file->id(), std::move(entry));

  // The file's own PT_LOAD range (at bias 0), read through libelf with pread
  // (or from a copy of an image in memory: the vDSO).
  if (!file->image().empty()) {
    e->image = file->image();
    e->pending_elf = elf_memory(reinterpret_cast<char*>(e->image.data()), e->image.size());
  } else {
    e->pending_fd = fcntl(file->fd(), F_DUPFD_CLOEXEC, 0);
    if (e->pending_fd < 0) return e;
    e->pending_elf = elf_begin(e->pending_fd, ELF_C_READ, nullptr);
  }
  size_t phnum = 0;
  if (e->pending_elf == nullptr || elf_kind(e->pending_elf) != ELF_K_ELF ||
      elf_getphdrnum(e->pending_elf, &phnum) != 0) {
    return e;
  }
  bool have_low = false;
  GElf_Addr low = 0, high = 0;
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr ph;
    if (gelf_getphdr(e->pending_elf, static_cast<int>(i), &ph) == nullptr || ph.p_type != PT_LOAD) {
      continue;
    }
    if (!have_low) {  // libdwfl takes the first PT_LOAD as the base
      low = ph.p_align > 1 ? ph.p_vaddr & ~(ph.p_align - 1) : ph.p_vaddr;
      have_low = true;
    }
    if (ph.p_vaddr + ph.p_memsz > high) high = ph.p_vaddr + ph.p_memsz;
  }
  if (!have_low || high <= low) return e;
  e->dwfl = dwfl_begin(&kCallbacks);
  if (e->dwfl == nullptr) return e;
  dwfl_report_begin(e->dwfl);
  e->mod = dwfl_report_module(e->dwfl, module.path.c_str(), low, high);
  if (e->mod != nullptr) {
    void** userdata = nullptr;
    dwfl_module_info(e->mod, &userdata, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
    if (userdata != nullptr) *userdata = e;
  }
  dwfl_report_end(e->dwfl, nullptr, nullptr);
  return e;
}

std::shared_ptr<const Module> Symbolizer::MappingFor(const LoadedModule& lm, uint64_t address) {
  uint64_t start = lm.start, end = lm.end, offset = lm.exec_file_offset;
  if (start == end) {  // no executable segment: the one containing the address
    const capture::ModuleSegment* seg = lm.SegmentOf(address);
    if (seg != nullptr) {
      start = seg->start;
      end = seg->start + seg->mem_size;
      offset = seg->file_offset;
    }
  }
  std::string key;
  key.reserve(lm.path.size() + lm.build_id.size() + 80);
  key.append(lm.path).push_back('\0');
  key.append(lm.build_id).push_back('\0');
  for (uint64_t v : {start, end, offset, lm.inode}) key.append(std::to_string(v)).push_back(':');
  auto it = mappings_.find(key);
  if (it != mappings_.end()) return it->second;
  auto m = std::make_shared<Module>();
  m->path = lm.path;
  m->start = start;
  m->end = end;
  m->file_offset = offset;
  m->inode = lm.inode;
  m->build_id = lm.build_id;
  if (mappings_.size() >= options_.max_mappings) mappings_.clear();  // holders keep theirs
  mappings_.emplace(std::move(key), m);
  return m;
}

std::shared_ptr<const SymbolizedPc> Symbolizer::Symbolize(const ModuleSet& modules,
                                                          uint64_t address) {
  auto result = std::make_shared<SymbolizedPc>();
  result->address = address;
  ModuleSet::Hit hit = modules.Lookup(address);
  if (hit.module == nullptr) {
    SymbolizedFrame frame;
    frame.function = UnknownName(address);
    result->frames.push_back(std::move(frame));
    return result;
  }
  const LoadedModule& lm = *hit.module;
  result->module = MappingFor(lm, address);
  result->file_offset = address - hit.segment->start + hit.segment->file_offset;
  const uint64_t vaddr = address - lm.load_bias;

  FileEntry* entry = EntryFor(lm, modules.root());
  if (entry == nullptr) {  // no usable file: what a server needs to do it later
    SymbolizedFrame frame;
    frame.function = result->module->FallbackName(result->file_offset);
    result->frames.push_back(std::move(frame));
    return result;
  }
  const std::pair<uint64_t, uint64_t> key{entry->file->id(), vaddr};
  auto it = frames_.find(key);
  std::shared_ptr<const Frames> frames;
  if (it != frames_.end()) {
    frames = it->second;
  } else {
    frames = Resolve(entry, vaddr, *result->module, result->file_offset);
    if (frames_.size() >= options_.max_cached_pcs) {
      frames_.clear();
      ++cache_evictions_;
    }
    frames_.emplace(key, frames);
  }
  result->frames = *frames;
  return result;
}

std::shared_ptr<const Symbolizer::Frames> Symbolizer::Resolve(FileEntry* entry, uint64_t vaddr,
                                                              const Module& mapping,
                                                              uint64_t file_offset) {
  auto frames = std::make_shared<Frames>();
  Dwfl_Module* mod = entry->mod;

  std::string sym_name;
  std::string sym_system_name;
  if (mod != nullptr) {
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* name = dwfl_module_addrinfo(mod, vaddr, &offset, &sym, nullptr, nullptr, nullptr);
    if (name != nullptr && name[0] != '\0') {
      sym_name = Demangle(name);
      if (sym_name != name) sym_system_name = name;
    }
  }

  // Source line of the address, then the chain of inlined scopes.
  std::string cur_file;
  int64_t cur_line = 0;
  Dwarf_Addr bias = 0;
  Dwarf_Die* cudie = nullptr;
  const bool want_lines = options_.system_library_lines || !entry->system_library;
  if (mod != nullptr && want_lines) {
    Dwfl_Line* line = dwfl_module_getsrc(mod, vaddr);
    if (line != nullptr) {
      int lineno = 0;
      const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (file != nullptr) cur_file = file;
      cur_line = lineno;
    }
    cudie = dwfl_module_addrdie(mod, vaddr, &bias);
  }
  bool found_subprogram = false;
  if (cudie != nullptr) {
    Dwarf_Die* scopes = nullptr;
    int n = dwarf_getscopes(cudie, vaddr - bias, &scopes);
    Dwarf_Files* files = nullptr;
    size_t nfiles = 0;
    bool have_files = dwarf_getsrcfiles(cudie, &files, &nfiles) == 0;
    for (int i = 0; i < n; ++i) {
      Dwarf_Die* scope = &scopes[i];
      int tag = dwarf_tag(scope);
      if (tag == DW_TAG_inlined_subroutine) {
        SymbolizedFrame frame;
        frame.function = DieName(scope, &frame.system_name);
        if (frame.function.empty()) frame.function = "[inlined]";
        frame.file = cur_file;
        frame.line = cur_line;
        frame.start_line = DeclLine(scope);
        frames->push_back(std::move(frame));
        Dwarf_Attribute attr;
        Dwarf_Word value = 0;
        cur_line = 0;
        if (dwarf_attr(scope, DW_AT_call_line, &attr) != nullptr &&
            dwarf_formudata(&attr, &value) == 0) {
          cur_line = static_cast<int64_t>(value);
        }
        if (have_files && dwarf_attr(scope, DW_AT_call_file, &attr) != nullptr &&
            dwarf_formudata(&attr, &value) == 0 && value < nfiles) {
          const char* f = dwarf_filesrc(files, value, nullptr, nullptr);
          cur_file = f != nullptr ? f : "";
        }
      } else if (tag == DW_TAG_subprogram) {
        SymbolizedFrame frame;
        std::string dwarf_system;
        std::string dwarf_name = DieName(scope, &dwarf_system);
        if (!sym_name.empty()) {
          frame.function = sym_name;
          frame.system_name = sym_system_name;
        } else {
          frame.function = dwarf_name;
          frame.system_name = dwarf_system;
        }
        frame.file = cur_file;
        frame.line = cur_line;
        frame.start_line = DeclLine(scope);
        if (!frame.function.empty()) {
          frames->push_back(std::move(frame));
          found_subprogram = true;
        }
        break;
      }
    }
    free(scopes);
  }
  if (!found_subprogram) {
    SymbolizedFrame frame;
    frame.function = !sym_name.empty() ? sym_name : mapping.FallbackName(file_offset);
    frame.system_name = sym_name.empty() ? "" : sym_system_name;
    frame.file = cur_file;
    frame.line = cur_line;
    frames->push_back(std::move(frame));
  }
  return frames;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
