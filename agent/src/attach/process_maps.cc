#include "attach/process_maps.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "unwind/elf_file_cache.h"

namespace stackstream {
namespace agent {
namespace {

struct MapsLine {
  uint64_t start = 0, end = 0, offset = 0, inode = 0;
  unsigned major = 0, minor = 0;
  char perms[5] = {};
  std::string path;
};

bool ParseLine(const std::string& line, MapsLine* out) {
  int consumed = 0;
  unsigned long long start, end, offset, inode;
  if (sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, out->perms, &offset,
             &out->major, &out->minor, &inode, &consumed) < 7) {
    return false;
  }
  out->start = start;
  out->end = end;
  out->offset = offset;
  out->inode = inode;
  out->path = consumed > 0 && static_cast<size_t>(consumed) <= line.size()
                  ? line.substr(static_cast<size_t>(consumed))
                  : std::string();
  while (!out->path.empty() && (out->path.back() == '\n' || out->path.back() == ' ')) {
    out->path.pop_back();
  }
  return true;
}

// The GNU build-id (lower-case hex) in a PT_NOTE segment's bytes, or "".
std::string BuildIdInNotes(const uint8_t* notes, size_t len, uint64_t align) {
  size_t off = 0;
  auto up = [align](uint64_t x) { return (x + align - 1) & ~(align - 1); };
  while (off + 12 <= len) {
    uint32_t h[3];
    memcpy(h, notes + off, sizeof h);
    const uint64_t name_off = off + 12, desc_off = name_off + up(h[0]);
    if (desc_off > len || h[1] > len - desc_off) break;
    if (h[2] == NT_GNU_BUILD_ID && h[0] == 4 && memcmp(notes + name_off, "GNU", 4) == 0) {
      return HexString(notes + desc_off, h[1]);
    }
    off = desc_off + up(h[1]);
  }
  return "";
}

}  // namespace

ProcessMaps::~ProcessMaps() {
  if (mem_fd_ >= 0) close(mem_fd_);
}

// The build-id the loaded image carries in the target's memory ("" when it
// cannot be read: /proc/PID/mem needs ptrace-attach rights, which a
// perf_event_open allowed at ptrace_scope 1 does not imply).
std::string ProcessMaps::BuildIdInMemory(uint64_t bias, const std::vector<Elf64_Phdr>& phdrs) {
  if (mem_fd_ == -1) {
    mem_fd_ = open(("/proc/" + std::to_string(pid_) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem_fd_ < 0) mem_fd_ = -2;
  }
  if (mem_fd_ < 0) return "";
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_NOTE || ph.p_filesz < 12 || ph.p_filesz > 4096) continue;
    std::vector<uint8_t> notes(ph.p_filesz);
    ssize_t n = pread(mem_fd_, notes.data(), notes.size(), static_cast<off_t>(bias + ph.p_vaddr));
    if (n != static_cast<ssize_t>(notes.size())) continue;
    std::string id = BuildIdInNotes(notes.data(), notes.size(), ph.p_align == 8 ? 8 : 4);
    if (!id.empty()) return id;
  }
  return "";
}

ProcessMaps::ProcessMaps(pid_t pid, std::string root, std::shared_ptr<ElfFileCache> files)
    : pid_(pid), root_(std::move(root)), files_(std::move(files)) {}

bool ProcessMaps::Describe(const std::string& path, uint64_t dev, uint64_t inode, uint64_t start,
                           uint64_t offset, LoadedModule* out) {
  LoadedModule probe;
  probe.path = path;
  probe.dev = dev;
  probe.inode = inode;
  std::shared_ptr<const ElfFile> file = files_->Get(probe, root_);
  if (file == nullptr && inode != 0) {
    // Overlay file systems show the lower file's device and inode in maps
    // but the overlay's through a path: fall back to the file's build-id.
    probe.dev = probe.inode = 0;
    file = files_->Get(probe, root_);
  }
  if (file == nullptr) return false;
  Elf64_Ehdr eh;
  if (!file->Read(0, &eh, sizeof eh) || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      eh.e_phnum > 4096) {
    return false;
  }
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  if (!file->Read(eh.e_phoff, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr))) return false;
  // The PT_LOAD mapped at "start": the one holding file offset "offset".
  const Elf64_Phdr* at = nullptr;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
    uint64_t page_off = ph.p_offset & ~uint64_t{4095};
    if (offset >= page_off && offset < ph.p_offset + ph.p_filesz) {
      at = &ph;
      break;
    }
  }
  if (at == nullptr) return false;
  const uint64_t bias = start - at->p_vaddr + at->p_offset - offset;
  LoadedModule mod;
  mod.path = path;
  mod.build_id = file->build_id();
  mod.load_bias = bias;
  mod.dev = file->dev();
  mod.inode = file->inode();
  bool have_exec = false;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type == PT_GNU_EH_FRAME) {
      mod.eh_frame_hdr = bias + ph.p_vaddr;
      mod.eh_frame_hdr_size = ph.p_memsz;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0 ||
        mod.segments.size() >= static_cast<size_t>(capture::kMaxModuleSegments)) {
      continue;
    }
    capture::ModuleSegment s = {};
    s.start = bias + ph.p_vaddr;
    s.mem_size = ph.p_memsz;
    s.file_offset = ph.p_offset;
    s.file_size = std::min(ph.p_filesz, ph.p_memsz);
    s.flags = ph.p_flags;
    mod.segments.push_back(s);
    if (ph.p_flags & PF_X) {
      if (!have_exec || s.start < mod.start) {
        mod.start = s.start;
        mod.exec_file_offset = s.file_offset;
      }
      mod.end = std::max(mod.end, s.start + s.mem_size);
      have_exec = true;
    }
  }
  if (mod.eh_frame_hdr != 0 && mod.SegmentOf(mod.eh_frame_hdr) == nullptr) {
    mod.eh_frame_hdr = mod.eh_frame_hdr_size = 0;
  }
  if (mod.segments.empty()) return false;
  // The file at that path is the one mapped: its build-id is the one the
  // image in memory carries (where we may read the target's memory).
  if (!mod.build_id.empty() && path != capture::kVdsoPath) {
    std::string in_memory = BuildIdInMemory(bias, phdrs);
    if (!in_memory.empty() && in_memory != mod.build_id) {
      ++build_id_mismatches_;
      return false;
    }
  }
  // Keep the file open while the module is in use (the target may exit and
  // take /proc/PID/root with it).
  held_.push_back(file);
  *out = std::move(mod);
  return true;
}

bool ProcessMaps::Refresh() {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/maps");
  if (!in) return false;
  std::vector<MapsLine> lines;
  std::string line;
  while (std::getline(in, line)) {
    MapsLine m;
    if (ParseLine(line, &m)) lines.push_back(std::move(m));
  }
  if (lines.empty()) return false;  // gone (an exited process reads empty)
  ++refreshes_;
  mappings_.clear();
  for (const MapsLine& m : lines) mappings_.emplace_back(m.start, m.end);
  std::sort(mappings_.begin(), mappings_.end());

  std::vector<LoadedModule> modules;
  std::map<Key, LoadedModule> known;
  std::vector<std::shared_ptr<const ElfFile>> previous_held;
  previous_held.swap(held_);
  unusable_ = 0;
  for (const MapsLine& m : lines) {
    if (m.perms[2] != 'x') continue;  // only code needs a module
    bool vdso = m.path == capture::kVdsoPath;
    if (!vdso && (m.path.empty() || m.path[0] != '/' || m.inode == 0)) continue;
    if (!vdso && m.path.size() > 10 && m.path.compare(m.path.size() - 10, 10, " (deleted)") == 0) {
      ++unusable_;
      continue;
    }
    const uint64_t dev = vdso ? 0 : makedev(m.major, m.minor);
    Key key{m.path, dev, m.inode, m.start};
    auto it = known_.find(key);
    LoadedModule mod;
    if (it != known_.end()) {
      mod = it->second;
      // Keep its file open.
      if (auto f = files_->Get(mod, root_)) held_.push_back(f);
    } else if (failed_.count(key) != 0 || !Describe(m.path, dev, m.inode, m.start, m.offset, &mod)) {
      failed_[key] = true;
      ++unusable_;
      continue;
    }
    // Two executable mappings of one module (rare): describe it once.
    bool dup = false;
    for (const LoadedModule& other : modules) dup = dup || other.SameAs(mod);
    if (!dup) modules.push_back(mod);
    known[key] = std::move(mod);
  }
  known_.swap(known);
  set_ = ModuleSet::FromModules(std::move(modules), root_);
  return true;
}

uint64_t ProcessMaps::MappingEnd(uint64_t address) const {
  auto it = std::upper_bound(mappings_.begin(), mappings_.end(),
                             std::make_pair(address, UINT64_MAX));
  if (it == mappings_.begin()) return 0;
  --it;
  if (address >= it->second) return 0;
  return it->second;
}

}  // namespace agent
}  // namespace stackstream
