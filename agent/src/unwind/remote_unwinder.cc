// RemoteUnwinder implementation: libunwind's generic (remote) API driven by
// our own accessors, as Linux perf does for sampled registers + stack
// (tools/perf/util/unwind-libunwind-local.c):
//   access_mem     stack addresses from the snapshot's copy; other addresses
//                  only inside a PT_LOAD segment of the ModuleSet, from the
//                  module's file (ElfFileCache pages, cached locally);
//   access_reg     the snapshot's registers (initial frame only);
//   find_proc_info module of the IP -> .eh_frame_hdr search table ->
//                  dwarf_search_unwind_table (UNW_INFO_FORMAT_REMOTE_TABLE).
// When DWARF cannot continue at a PC without unwind info, a frame-pointer step
// is tried on the copied stack and libunwind is restarted from there.
#include "unwind/remote_unwinder.h"

#include <elf.h>
#include <libunwind.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "unwind/elf_file_cache.h"
#include "unwind/module_set.h"

// Exported by libunwind-x86_64 but not declared by its public header.
extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                                  unw_dyn_info_t* di, unw_proc_info_t* pi,
                                                  int need_unwind_info, void* arg);

namespace stackstream {
namespace agent {

namespace {

constexpr uint8_t kDwEhPeOmit = 0xff;
constexpr uint8_t kDwEhPeDatarelSdata4 = 0x3b;  // DW_EH_PE_datarel | DW_EH_PE_sdata4
constexpr size_t kLocalPages = 64;              // per-unwinder page slots (power of two)

// Size in bytes of a DW_EH_PE-encoded value (format nibble), 0 if unknown.
size_t EncodedSize(uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00: return 8;  // absptr
    case 0x02: case 0x0a: return 2;
    case 0x03: case 0x0b: return 4;
    case 0x04: case 0x0c: return 8;
    default: return 0;
  }
}

}  // namespace

struct RemoteUnwinder::Impl {
  // Per-Unwind() state, handed to the accessors as libunwind's "arg".
  struct Context {
    Impl* impl;
    const StackSnapshot* snap;
    uint64_t stack_end;
    uint64_t regs[kSnapshotRegs];  // registers of the frame the cursor started at
    bool noinfo;                   // find_proc_info found no unwind info (this step)
  };

  // What we know about module i of the current set.
  struct ModState {
    int file_state = 0;  // 0 not looked up, 1 usable, -1 unusable
    std::shared_ptr<const ElfFile> file;
    int hdr_state = 0;   // .eh_frame_hdr: 0 not parsed, 1 usable, -1 unusable
    uint64_t table_data = 0;  // runtime address of the binary search table
    uint64_t fde_count = 0;
  };

  // The file-backed part of the segment read last (of the current set).
  struct LastSegment {
    uint64_t start = 1, file_end = 0;  // runtime [start, file_end): empty
    uint64_t file_offset = 0;
    const ElfFile* file = nullptr;     // held by mods[]
  };

  struct PageSlot {
    uint64_t file_id = 0;
    uint64_t index = ~uint64_t{0};
    std::shared_ptr<const ElfPage> page;
  };

  explicit Impl(std::shared_ptr<ElfFileCache> f) : files(std::move(f)) {
    if (files == nullptr) files = std::make_shared<ElfFileCache>();
    static const unw_accessors_t accessors = MakeAccessors();
    as = unw_create_addr_space(const_cast<unw_accessors_t*>(&accessors), 0);
    if (as != nullptr) {
      // UNW_CACHE_PER_THREAD would avoid the lock (and the two sigprocmask
      // calls per step that make ~75% of a warm unwind), but Debian's
      // libunwind is built without it (it falls back to global), and its
      // thread cache would be shared by all address spaces of the thread,
      // keyed by IP only. UNW_CACHE_NONE costs ~3.5 us a frame.
      unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
      unw_set_cache_size(as, 1024, 0);
    }
  }
  ~Impl() {
    if (as != nullptr) unw_destroy_addr_space(as);
  }

  static unw_accessors_t MakeAccessors() {
    unw_accessors_t a = {};
    a.find_proc_info = &FindProcInfo;
    a.put_unwind_info = &PutUnwindInfo;
    a.get_dyn_info_list_addr = &GetDynInfoListAddr;
    a.access_mem = &AccessMem;
    a.access_reg = &AccessReg;
    a.access_fpreg = &AccessFpreg;
    a.resume = &Resume;
    a.get_proc_name = &GetProcName;
    return a;
  }

  // Switches to "next" (another set than the last call's). libunwind's
  // caches hold register rules by IP: they stay right while every module of
  // the previous set is still there, at the same place, from the same file.
  void UseSet(const ModuleSet& next) {
    ++stats.set_changes;
    std::map<std::pair<uint64_t, std::string>, size_t> old_index;
    for (size_t i = 0; i < prev_modules.size(); ++i) {
      old_index.emplace(std::make_pair(prev_modules[i].load_bias, prev_modules[i].path), i);
    }
    std::vector<ModState> states(next.modules().size());
    size_t kept = 0;
    if (next.root() == prev_root) {  // another root: other files, maybe
      for (size_t i = 0; i < next.modules().size(); ++i) {
        const LoadedModule& m = next.modules()[i];
        auto it = old_index.find(std::make_pair(m.load_bias, m.path));
        if (it != old_index.end() && prev_modules[it->second].SameAs(m) &&
            it->second < mods.size()) {
          states[i] = std::move(mods[it->second]);  // same file, same place
          old_index.erase(it);
          ++kept;
        }
      }
    }
    if (kept != prev_modules.size()) {
      if (as != nullptr) unw_flush_cache(as, 0, 0);
      ++stats.cache_flushes;
    }
    mods = std::move(states);
    last = LastSegment();
    prev_modules = next.modules();
    prev_root = next.root();
    set_serial = next.serial();
  }

  // The usable file of module "index" of the current set, or null.
  const ElfFile* FileOf(uint32_t index) {
    ModState& s = mods[index];
    if (s.file_state == 0) {
      s.file = files->Get(set->modules()[index], set->root());
      s.file_state = s.file != nullptr ? 1 : -1;
      if (s.file == nullptr) ++stats.modules_without_file;
    }
    return s.file.get();
  }

  // Copies file bytes [offset, offset + len) (within one page or two).
  bool ReadFile(const ElfFile* file, uint64_t offset, uint8_t* out, size_t len) {
    while (len > 0) {
      const uint64_t index = offset / kElfPageSize;
      PageSlot& slot = slots[(index + file->id() * 0x9e3779b97f4a7c15ULL) & (kLocalPages - 1)];
      if (slot.file_id != file->id() || slot.index != index || slot.page == nullptr) {
        slot.page = file->Page(index);
        slot.file_id = file->id();
        slot.index = index;
        if (slot.page == nullptr) {
          slot.index = ~uint64_t{0};
          return false;
        }
      }
      const size_t in_page = static_cast<size_t>(offset % kElfPageSize);
      if (in_page >= slot.page->size) return false;
      const size_t n = std::min<size_t>(len, slot.page->size - in_page);
      memcpy(out, slot.page->data + in_page, n);
      out += n;
      offset += n;
      len -= n;
    }
    return true;
  }

  // Reads runtime memory [addr, addr + len) of the process from its module
  // files. It must start in the file-backed part of a PT_LOAD segment; bytes
  // past that part (the .bss, or beyond the segment) read as zero, as a
  // word straddling the end would in memory.
  bool ReadTarget(uint64_t addr, void* out, size_t len) {
    // Reads cluster (a table, an FDE and its CIE): try the last segment first.
    if (!(addr >= last.start && addr < last.file_end)) {
      ModuleSet::Hit hit = set->Lookup(addr);
      if (hit.module == nullptr) return false;
      const capture::ModuleSegment& seg = *hit.segment;
      if (addr - seg.start >= seg.file_size) return false;
      const ElfFile* file = FileOf(hit.index);
      if (file == nullptr) return false;
      last.start = seg.start;
      last.file_end = seg.start + seg.file_size;
      last.file_offset = seg.file_offset;
      last.file = file;
    }
    const uint64_t avail = last.file_end - addr;
    const size_t n = avail < len ? static_cast<size_t>(avail) : len;
    auto* dst = static_cast<uint8_t*>(out);
    if (!ReadFile(last.file, last.file_offset + (addr - last.start), dst, n)) return false;
    if (n < len) memset(dst + n, 0, len - n);
    return true;
  }

  static bool ReadStack(const Context* ctx, uint64_t addr, uint64_t* val) {
    if (addr >= ctx->snap->stack_start && addr < ctx->stack_end && ctx->stack_end - addr >= 8) {
      memcpy(val, ctx->snap->stack + (addr - ctx->snap->stack_start), 8);
      return true;
    }
    return false;
  }

  // Parses module "index"'s .eh_frame_hdr once. True if it has a usable table.
  bool ParseEhFrameHdr(uint32_t index) {
    ModState& s = mods[index];
    if (s.hdr_state != 0) return s.hdr_state > 0;
    s.hdr_state = -1;
    const LoadedModule& m = set->modules()[index];
    if (m.eh_frame_hdr == 0 || m.eh_frame_hdr_size < 4) return false;
    uint8_t h[4];
    if (!ReadTarget(m.eh_frame_hdr, h, 4)) return false;
    const uint8_t version = h[0], eh_frame_ptr_enc = h[1], fde_count_enc = h[2], table_enc = h[3];
    if (version != 1 || fde_count_enc == kDwEhPeOmit || table_enc != kDwEhPeDatarelSdata4) {
      return false;
    }
    size_t ptr_size = EncodedSize(eh_frame_ptr_enc);
    size_t count_size = EncodedSize(fde_count_enc);
    if (ptr_size == 0 || count_size == 0) return false;
    uint64_t p = m.eh_frame_hdr + 4 + ptr_size;
    uint8_t buf[8] = {};
    if (!ReadTarget(p, buf, count_size)) return false;
    uint64_t count = 0;
    switch (count_size) {
      case 2: { uint16_t v; memcpy(&v, buf, 2); count = v; break; }
      case 4: { uint32_t v; memcpy(&v, buf, 4); count = v; break; }
      default: memcpy(&count, buf, 8); break;
    }
    // The table (two int32 per FDE) must fit in .eh_frame_hdr.
    const uint64_t table = p + count_size;
    const uint64_t hdr_end = m.eh_frame_hdr + m.eh_frame_hdr_size;
    if (count == 0 || count > (uint64_t{1} << 32) || table > hdr_end ||
        count * 8 > hdr_end - table) {
      return false;
    }
    s.table_data = table;
    s.fde_count = count;
    s.hdr_state = 1;
    return true;
  }

  // ---- libunwind accessors (arg = Context*) ----

  static int FindProcInfo(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi,
                          int need_unwind_info, void* arg) {
    auto* ctx = static_cast<Context*>(arg);
    Impl* self = ctx->impl;
    ++self->stats.proc_info_lookups;
    ModuleSet::Hit hit = self->set->Lookup(ip);
    if (hit.module == nullptr || !(hit.segment->flags & PF_X) || !self->ParseEhFrameHdr(hit.index)) {
      ctx->noinfo = true;
      return -UNW_ENOINFO;
    }
    const ModState& m = self->mods[hit.index];
    unw_dyn_info_t di;
    memset(&di, 0, sizeof(di));
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.start_ip = hit.segment->start;
    di.end_ip = hit.segment->start + hit.segment->mem_size;
    di.gp = 0;
    di.u.rti.name_ptr = 0;
    di.u.rti.segbase = hit.module->eh_frame_hdr;
    di.u.rti.table_data = m.table_data;
    // In unw_word_t units; each entry is two int32s.
    di.u.rti.table_len = m.fde_count * 8 / sizeof(unw_word_t);
    int ret = _Ux86_64_dwarf_search_unwind_table(as, ip, &di, pi, need_unwind_info, arg);
    if (ret == -UNW_ENOINFO) ctx->noinfo = true;
    return ret;
  }

  static void PutUnwindInfo(unw_addr_space_t, unw_proc_info_t*, void*) {
    // Nothing to free: dwarf_search_unwind_table's allocations are released by
    // libunwind itself, and we allocate nothing per lookup.
  }

  static int GetDynInfoListAddr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

  static int AccessMem(unw_addr_space_t, unw_word_t addr, unw_word_t* val, int write,
                       void* arg) {
    if (write) return -UNW_EINVAL;
    auto* ctx = static_cast<Context*>(arg);
    uint64_t v;
    if (ReadStack(ctx, addr, &v) || ctx->impl->ReadTarget(addr, &v, 8)) {
      *val = v;
      return 0;
    }
    return -UNW_EINVAL;
  }

  static int AccessReg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write,
                       void* arg) {
    if (write || reg < 0 || reg >= kSnapshotRegs) return -UNW_EBADREG;
    *val = static_cast<Context*>(arg)->regs[reg];
    return 0;
  }

  static int AccessFpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) {
    return -UNW_EBADREG;
  }
  static int Resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }
  static int GetProcName(unw_addr_space_t, unw_word_t, char*, size_t, unw_word_t*, void*) {
    return -UNW_ENOINFO;
  }

  // Whether "pc" lies in an executable segment of a known module.
  bool IsCode(uint64_t pc) const {
    ModuleSet::Hit hit = set->Lookup(pc);
    return hit.module != nullptr && (hit.segment->flags & PF_X);
  }

  // One frame-pointer step from a frame whose stack pointer is "sp" and whose
  // RBP is "rbp": [rbp] = caller's RBP, [rbp + 8] = return address. Only
  // within the copied stack, and only to a return address in executable code
  // of a known module.
  bool FramePointerStep(Context* ctx, uint64_t sp, uint64_t rbp, uint64_t* ra,
                        uint64_t* new_sp, uint64_t* new_rbp) {
    if (rbp == 0 || (rbp & 7) != 0 || rbp < sp) return false;
    if (!ReadStack(ctx, rbp, new_rbp) || !ReadStack(ctx, rbp + 8, ra)) return false;
    if (!IsCode(*ra)) return false;
    *new_sp = rbp + 16;
    return true;
  }

  int Unwind(const ModuleSet& modules, const StackSnapshot& snap, uint64_t* pcs, int max_depth,
             bool* truncated) {
    *truncated = false;
    if (max_depth <= 0 || as == nullptr) return 0;
    const uint64_t rip = snap.regs[kRegRip];
    if (rip == 0) return 0;
    ++stats.unwinds;
    if (modules.serial() != set_serial) UseSet(modules);
    set = &modules;

    Context ctx;
    ctx.impl = this;
    ctx.snap = &snap;
    ctx.stack_end = snap.stack != nullptr ? snap.stack_start + snap.stack_size : snap.stack_start;
    if (ctx.stack_end < snap.stack_start) ctx.stack_end = snap.stack_start;
    memcpy(ctx.regs, snap.regs, sizeof(ctx.regs));
    ctx.noinfo = false;

    pcs[0] = rip;
    int n = 1;
    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, as, &ctx) < 0) return Done(n);

    uint64_t sp = snap.regs[kRegRsp];
    uint64_t rbp = snap.regs[kRegRbp];
    for (;;) {
      ctx.noinfo = false;
      int r = unw_step(&cursor);
      unw_word_t nip = 0, nsp = 0, nrbp = 0;
      bool ok = false;
      if (r > 0 && unw_get_reg(&cursor, UNW_REG_IP, &nip) == 0 &&
          unw_get_reg(&cursor, UNW_REG_SP, &nsp) == 0 && nip != 0 && nsp > sp) {
        ok = true;
        // A step libunwind had to guess (no unwind info for the frame) must
        // land in executable code of a known module; one computed from CFI is
        // trusted even outside modules (e.g. JIT code).
        if (ctx.noinfo && !IsCode(nip)) ok = false;
        if (ok && unw_get_reg(&cursor, UNW_X86_64_RBP, &nrbp) != 0) nrbp = 0;
      }
      if (!ok) {
        // DWARF gave up. Trust an explicit end of stack (r == 0 at a PC that
        // has unwind info); otherwise try the frame pointer.
        if (r == 0 && !ctx.noinfo) break;
        uint64_t ra, fsp, frbp;
        if (!FramePointerStep(&ctx, sp, rbp, &ra, &fsp, &frbp)) break;
        nip = ra;
        nsp = fsp;
        nrbp = frbp;
        // Restart libunwind at the caller. Look up its rules at ra - 1 (inside
        // the call instruction) in case the call was the function's last one.
        ctx.regs[kRegRip] = ra - 1;
        ctx.regs[kRegRsp] = fsp;
        ctx.regs[kRegRbp] = frbp;
        if (unw_init_remote(&cursor, as, &ctx) < 0) {
          if (n < max_depth) pcs[n++] = ra; else *truncated = true;
          break;
        }
      }
      if (n == max_depth) {
        *truncated = true;
        break;
      }
      pcs[n++] = nip;
      sp = nsp;
      rbp = nrbp;
    }
    return Done(n);
  }

  int Done(int n) {
    set = nullptr;  // only valid during the call
    return n;
  }

  std::shared_ptr<ElfFileCache> files;
  unw_addr_space_t as = nullptr;        // libunwind's caches: this unwinder's process only
  const ModuleSet* set = nullptr;       // during Unwind() only
  uint64_t set_serial = 0;              // the last call's set
  std::vector<LoadedModule> prev_modules;
  std::string prev_root;
  std::vector<ModState> mods;           // parallel to the last set's modules()
  PageSlot slots[kLocalPages];
  LastSegment last;
  Stats stats;
};

RemoteUnwinder::RemoteUnwinder(std::shared_ptr<ElfFileCache> files)
    : impl_(new Impl(std::move(files))) {}
RemoteUnwinder::~RemoteUnwinder() = default;

int RemoteUnwinder::Unwind(const ModuleSet& modules, const StackSnapshot& snapshot, uint64_t* pcs,
                           int max_depth, bool* truncated) {
  return impl_->Unwind(modules, snapshot, pcs, max_depth, truncated);
}

const RemoteUnwinder::Stats& RemoteUnwinder::stats() const { return impl_->stats; }
const std::shared_ptr<ElfFileCache>& RemoteUnwinder::files() const { return impl_->files; }

}  // namespace agent
}  // namespace stackstream
