// ModuleScan (see module_scan.h). Build-ids are read from the module's own
// PT_NOTE segments in memory: they are mapped while dl_iterate_phdr holds the
// loader lock, so the reads cannot fault.
#include "capture/module_scan.h"

#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace stackstream {
namespace capture {
namespace {

struct ScanState {
  uint64_t generation;
  ModuleEmitFn emit;
  void* arg;
  int count;
  char exe[512];
};

int CounterCallback(dl_phdr_info* info, size_t size, void* data) {
  auto* out = static_cast<uint64_t*>(data);
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    out[0] = info->dlpi_adds;
    out[1] = info->dlpi_subs;
  }
  return 1;  // the counters are the same in every entry
}

void ReadBuildId(const dl_phdr_info* info, ModuleMessage* m) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    const uint8_t* end = p + ph.p_memsz;
    const size_t align = ph.p_align == 8 ? 8 : 4;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) nh;
      memcpy(&nh, p, sizeof nh);
      const uint8_t* name = p + sizeof nh;
      size_t name_size = (nh.n_namesz + align - 1) & ~(align - 1);
      const uint8_t* desc = name + name_size;
      size_t desc_size = (nh.n_descsz + align - 1) & ~(align - 1);
      if (desc + nh.n_descsz > end || desc < name) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        uint32_t n = nh.n_descsz > kMaxBuildIdBytes ? kMaxBuildIdBytes : nh.n_descsz;
        memcpy(m->build_id, desc, n);
        m->build_id_size = n;
        return;
      }
      p = desc + desc_size;
    }
  }
}

int ScanCallback(dl_phdr_info* info, size_t, void* data) {
  auto* st = static_cast<ScanState*>(data);
  const char* path = info->dlpi_name;
  if (path == nullptr || path[0] == '\0') {
    path = st->exe;  // the main program
  } else if (strncmp(path, "linux-vdso", 10) == 0 || strncmp(path, "linux-gate", 10) == 0) {
    // No file: the agent reads the kernel's vDSO image (the same for every
    // process on the machine) from its own address space.
    path = kVdsoPath;
  } else if (path[0] != '/') {
    return 0;  // no file to read
  }
  if (path[0] == '\0') return 0;
  ModuleMessage m;
  memset(&m, 0, sizeof m);
  m.header.magic = kMessageMagic;
  m.header.type = kModule;
  m.header.version = kFormatVersion;
  m.generation = st->generation;
  m.load_bias = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && ph.p_memsz > 0 && m.segment_count < kMaxModuleSegments) {
      ModuleSegment& s = m.segments[m.segment_count++];
      s.start = info->dlpi_addr + ph.p_vaddr;
      s.mem_size = ph.p_memsz;
      s.file_offset = ph.p_offset;
      s.file_size = ph.p_filesz;
      s.flags = ph.p_flags;
    } else if (ph.p_type == PT_GNU_EH_FRAME) {
      m.eh_frame_hdr = info->dlpi_addr + ph.p_vaddr;
      m.eh_frame_hdr_size = ph.p_memsz;
    }
  }
  if (m.segment_count == 0) return 0;
  ReadBuildId(info, &m);
  struct stat sb;
  if (path[0] == '/' && stat(path, &sb) == 0) {
    m.dev = sb.st_dev;
    m.inode = sb.st_ino;
  }
  size_t len = strlen(path);
  if (sizeof(ModuleMessage) + len + 1 > kMaxMessageBytes) return 0;
  m.path_bytes = static_cast<uint32_t>(len + 1);
  m.header.size = static_cast<uint32_t>(sizeof(ModuleMessage) + len + 1);
  st->emit(m, path, st->arg);
  ++st->count;
  return 0;
}

}  // namespace

void LoaderCounters(uint64_t* adds, uint64_t* subs) {
  uint64_t out[2] = {0, 0};
  dl_iterate_phdr(CounterCallback, out);
  *adds = out[0];
  *subs = out[1];
}

int ScanModules(uint64_t generation, ModuleEmitFn emit, void* arg) {
  ScanState st;
  st.generation = generation;
  st.emit = emit;
  st.arg = arg;
  st.count = 0;
  ssize_t n = readlink("/proc/self/exe", st.exe, sizeof(st.exe) - 1);
  st.exe[n > 0 ? n : 0] = '\0';
  // A replaced binary reads "path (deleted)": keep the path, the file check
  // in the agent (build-id) tells whether it is still the same.
  static const char kDeleted[] = " (deleted)";
  size_t len = strlen(st.exe);
  if (len > sizeof(kDeleted) - 1 &&
      strcmp(st.exe + len - (sizeof(kDeleted) - 1), kDeleted) == 0) {
    st.exe[len - (sizeof(kDeleted) - 1)] = '\0';
  }
  dl_iterate_phdr(ScanCallback, &st);
  return st.count;
}

}  // namespace capture
}  // namespace stackstream
