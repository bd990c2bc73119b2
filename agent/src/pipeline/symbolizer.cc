#include "pipeline/symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <link.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

// The loader's load/unload counters (dlpi_adds + dlpi_subs): they change on
// every dlopen/dlclose. Takes the loader lock briefly (drain thread only).
int LoaderGenerationCallback(struct dl_phdr_info* info, size_t, void* data) {
  *static_cast<unsigned long long*>(data) = info->dlpi_adds + info->dlpi_subs;
  return 1;  // the first object is enough
}

unsigned long long LoaderGeneration() {
  unsigned long long generation = 0;
  dl_iterate_phdr(LoaderGenerationCallback, &generation);
  return generation;
}

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

// Separate debug info only from the local build-id directory: never through
// debuginfod (no network access from inside a host process).
int FindLocalDebuginfo(Dwfl_Module* mod, void**, const char*, Dwarf_Addr, const char*,
                       const char*, GElf_Word, char** debuginfo_file_name) {
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  int len = dwfl_module_build_id(mod, &bits, &vaddr);
  if (len <= 1) return -1;
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < len; ++i) {
    hex.push_back(kHex[bits[i] >> 4]);
    hex.push_back(kHex[bits[i] & 15]);
  }
  std::string path = "/usr/lib/debug/.build-id/" + hex.substr(0, 2) + "/" + hex.substr(2) + ".debug";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  *debuginfo_file_name = strdup(path.c_str());
  return fd;
}

const Dwfl_Callbacks kCallbacks = {
    dwfl_linux_proc_find_elf,
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

}  // namespace

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

struct Symbolizer::Dwfl {
  ::Dwfl* dwfl = nullptr;
  Dwfl() { dwfl = dwfl_begin(&kCallbacks); }
  ~Dwfl() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
  void Report() {
    if (dwfl == nullptr) return;
    dwfl_report_begin(dwfl);
    dwfl_linux_proc_report(dwfl, getpid());
    dwfl_report_end(dwfl, nullptr, nullptr);
  }
};

Symbolizer::Symbolizer() : Symbolizer(Options()) {}

Symbolizer::Symbolizer(Options options)
    : options_(std::move(options)), modules_(options_.maps_path), dwfl_(new Dwfl()) {
  RefreshLocked(true);
}

Symbolizer::~Symbolizer() = default;

void Symbolizer::RefreshModules() { RefreshLocked(true); }

void Symbolizer::RefreshLocked(bool force) {
  int64_t now = MonotonicMs();
  if (!force && last_refresh_ms_ >= 0 && now - last_refresh_ms_ < options_.min_refresh_interval_ms) {
    return;
  }
  last_refresh_ms_ = now;
  loader_generation_ = LoaderGeneration();
  std::vector<std::shared_ptr<const Module>> before = modules_.modules();
  modules_.Refresh();
  dwfl_->Report();
  // A module replaced by another file at an overlapping address: forget the
  // PCs resolved in the old one (unloaded modules otherwise keep theirs).
  const auto& after = modules_.modules();
  for (const auto& old : before) {
    bool kept = false;
    bool overlapped = false;
    for (const auto& m : after) {
      if (m == old) kept = true;
      else if (m->start < old->end && old->start < m->end) overlapped = true;
    }
    if (kept || !overlapped) continue;
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (it->first >= old->start && it->first < old->end) {
        it = cache_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

std::shared_ptr<const SymbolizedPc> Symbolizer::Symbolize(uint64_t address) {
  auto it = cache_.find(address);
  if (it != cache_.end()) return it->second;
  std::shared_ptr<SymbolizedPc> result = Resolve(address);
  if (cache_.size() >= options_.max_cached_pcs) {
    cache_.clear();
    ++cache_evictions_;
  }
  // Only cache PCs found in a module: an unknown PC may become known after
  // the next refresh.
  if (result->module != nullptr) cache_.emplace(address, result);
  return result;
}

std::shared_ptr<SymbolizedPc> Symbolizer::Resolve(uint64_t address) {
  auto result = std::make_shared<SymbolizedPc>();
  result->address = address;
  result->module = modules_.Find(address);
  if (result->module == nullptr) {
    // A library loaded since the last refresh: refresh now. Otherwise (JIT
    // code, bad PCs) at most once per min_refresh_interval_ms.
    RefreshLocked(/*force=*/LoaderGeneration() != loader_generation_);
    result->module = modules_.Find(address);
  }
  if (result->module == nullptr) {
    char buf[40];
    snprintf(buf, sizeof buf, "[unknown]+0x%llx", static_cast<unsigned long long>(address));
    SymbolizedFrame frame;
    frame.function = buf;
    result->frames.push_back(std::move(frame));
    return result;
  }
  result->file_offset = result->module->FileOffset(address);

  std::string sym_name;
  std::string sym_system_name;
  Dwfl_Module* mod = dwfl_->dwfl != nullptr ? dwfl_addrmodule(dwfl_->dwfl, address) : nullptr;
  if (mod != nullptr) {
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* name =
        dwfl_module_addrinfo(mod, address, &offset, &sym, nullptr, nullptr, nullptr);
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
  const bool want_lines =
      options_.system_library_lines || !IsSystemLibrary(result->module->path);
  if (mod != nullptr && want_lines) {
    Dwfl_Line* line = dwfl_module_getsrc(mod, address);
    if (line != nullptr) {
      int lineno = 0;
      const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (file != nullptr) cur_file = file;
      cur_line = lineno;
    }
    cudie = dwfl_module_addrdie(mod, address, &bias);
  }
  bool found_subprogram = false;
  if (cudie != nullptr) {
    Dwarf_Die* scopes = nullptr;
    int n = dwarf_getscopes(cudie, address - bias, &scopes);
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
        result->frames.push_back(std::move(frame));
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
          result->frames.push_back(std::move(frame));
          found_subprogram = true;
        }
        break;
      }
    }
    free(scopes);
  }
  if (!found_subprogram) {
    SymbolizedFrame frame;
    frame.function = !sym_name.empty() ? sym_name : result->module->FallbackName(address);
    frame.system_name = sym_name.empty() ? "" : sym_system_name;
    frame.file = cur_file;
    frame.line = cur_line;
    result->frames.push_back(std::move(frame));
  }
  return result;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
