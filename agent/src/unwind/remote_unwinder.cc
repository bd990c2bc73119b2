// RemoteUnwinder implementation: libunwind's generic (remote) API driven by
// our own accessors, as Linux perf does for sampled registers + stack
// (tools/perf/util/unwind-libunwind-local.c), but for our own process:
//   access_mem     stack addresses from the snapshot's copy; other addresses
//                  only inside a known module's PT_LOAD range, through
//                  SafeMemory (cannot fault; read-only pages cached);
//   access_reg     the snapshot's registers (initial frame only);
//   find_proc_info module of the IP -> .eh_frame_hdr search table ->
//                  dwarf_search_unwind_table (UNW_INFO_FORMAT_REMOTE_TABLE).
// When DWARF cannot continue at a PC without unwind info, a frame-pointer step
// is tried on the copied stack and libunwind is restarted from there.
#include "unwind/remote_unwinder.h"

#include <elf.h>
#include <libunwind.h>
#include <time.h>

#include <cstring>

#include "unwind/module_table.h"
#include "unwind/safe_memory.h"

// Exported by libunwind-x86_64 but not declared by its public header.
extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
                                                  unw_dyn_info_t* di, unw_proc_info_t* pi,
                                                  int need_unwind_info, void* arg);

namespace stackstream {
namespace agent {

namespace {

using unwind_internal::Module;
using unwind_internal::ModuleTable;
using unwind_internal::SafeMemory;
using unwind_internal::Segment;

constexpr uint8_t kDwEhPeOmit = 0xff;
constexpr uint8_t kDwEhPeDatarelSdata4 = 0x3b;  // DW_EH_PE_datarel | DW_EH_PE_sdata4
constexpr int64_t kRebuildIntervalNs = 100 * 1000 * 1000;  // unknown-IP rebuild rate limit

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

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

  Impl() {
    accessors.find_proc_info = &FindProcInfo;
    accessors.put_unwind_info = &PutUnwindInfo;
    accessors.get_dyn_info_list_addr = &GetDynInfoListAddr;
    accessors.access_mem = &AccessMem;
    accessors.access_reg = &AccessReg;
    accessors.access_fpreg = &AccessFpreg;
    accessors.resume = &Resume;
    accessors.get_proc_name = &GetProcName;
    as = unw_create_addr_space(&accessors, 0);
    if (as != nullptr) {
      unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
      unw_set_cache_size(as, 1024, 0);
    }
  }
  ~Impl() {
    if (as != nullptr) unw_destroy_addr_space(as);
  }

  void RebuildModules(bool force_flush) {
    uint64_t old_subs = modules.subs();
    bool had = !modules.empty();
    modules.Build();
    last_rebuild_ns = MonotonicNs();
    modules_valid = true;
    if (force_flush || (had && modules.subs() != old_subs)) {
      // Something may have been unloaded: cached pages and cached register
      // rules may describe code that is gone or replaced.
      memory.Flush();
      if (as != nullptr) unw_flush_cache(as, 0, 0);
    }
  }

  // The segment containing "addr", rebuilding the table (rate limited) when
  // no known module contains it.
  const Segment* FindSegment(uint64_t addr, bool may_rebuild) {
    const Segment* s = modules.Find(addr);
    if (s == nullptr && may_rebuild && MonotonicNs() - last_rebuild_ns >= kRebuildIntervalNs) {
      RebuildModules(false);
      s = modules.Find(addr);
    }
    return s;
  }

  bool ReadTarget(uint64_t addr, uint64_t* val) {
    const Segment* s = modules.Find(addr);
    if (s == nullptr || addr + 8 > s->end) return false;
    if (s->flags & PF_W) return memory.Read(addr, val, 8, false);
    return memory.ReadWordCached(addr, val);
  }

  static bool ReadStack(const Context* ctx, uint64_t addr, uint64_t* val) {
    if (addr >= ctx->snap->stack_start && addr < ctx->stack_end && ctx->stack_end - addr >= 8) {
      memcpy(val, ctx->snap->stack + (addr - ctx->snap->stack_start), 8);
      return true;
    }
    return false;
  }

  // Parses "m"'s .eh_frame_hdr once. Returns true if it has a usable table.
  bool ParseEhFrameHdr(Module& m) {
    if (m.hdr_state != 0) return m.hdr_state > 0;
    m.hdr_state = -1;
    if (m.eh_frame_hdr == 0) return false;
    uint8_t h[4];
    if (!memory.Read(m.eh_frame_hdr, h, 4, true)) return false;
    const uint8_t version = h[0], eh_frame_ptr_enc = h[1], fde_count_enc = h[2], table_enc = h[3];
    if (version != 1 || fde_count_enc == kDwEhPeOmit || table_enc != kDwEhPeDatarelSdata4) {
      return false;
    }
    size_t ptr_size = EncodedSize(eh_frame_ptr_enc);
    size_t count_size = EncodedSize(fde_count_enc);
    if (ptr_size == 0 || count_size == 0) return false;
    uint64_t p = m.eh_frame_hdr + 4 + ptr_size;
    uint8_t buf[8] = {};
    if (!memory.Read(p, buf, count_size, true)) return false;
    uint64_t count = 0;
    switch (count_size) {
      case 2: { uint16_t v; memcpy(&v, buf, 2); count = v; break; }
      case 4: { uint32_t v; memcpy(&v, buf, 4); count = v; break; }
      default: memcpy(&count, buf, 8); break;
    }
    if (count == 0 || count > (uint64_t{1} << 32)) return false;
    m.table_data = p + count_size;
    m.fde_count = count;
    m.hdr_state = 1;
    return true;
  }

  // ---- libunwind accessors (arg = Context*) ----

  static int FindProcInfo(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi,
                          int need_unwind_info, void* arg) {
    auto* ctx = static_cast<Context*>(arg);
    Impl* self = ctx->impl;
    const Segment* s = self->FindSegment(ip, true);
    if (s == nullptr || !(s->flags & PF_X)) {
      ctx->noinfo = true;
      return -UNW_ENOINFO;
    }
    Module& m = self->modules.module(s->module);
    if (!self->ParseEhFrameHdr(m)) {
      ctx->noinfo = true;
      return -UNW_ENOINFO;
    }
    unw_dyn_info_t di;
    memset(&di, 0, sizeof(di));
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.start_ip = s->start;
    di.end_ip = s->end;
    di.gp = 0;
    di.u.rti.name_ptr = 0;
    di.u.rti.segbase = m.eh_frame_hdr;
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
    if (ReadStack(ctx, addr, &v) || ctx->impl->ReadTarget(addr, &v)) {
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
  bool IsCode(uint64_t pc) {
    const Segment* s = FindSegment(pc, true);
    return s != nullptr && (s->flags & PF_X);
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

  int Unwind(const StackSnapshot& snap, uint64_t* pcs, int max_depth, bool* truncated) {
    *truncated = false;
    if (max_depth <= 0 || as == nullptr) return 0;
    const uint64_t rip = snap.regs[kRegRip];
    if (rip == 0) return 0;
    if (!modules_valid) RebuildModules(flush_pending);
    flush_pending = false;

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
    if (unw_init_remote(&cursor, as, &ctx) < 0) return n;

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
    return n;
  }

  unw_accessors_t accessors = {};
  unw_addr_space_t as = nullptr;
  ModuleTable modules;
  SafeMemory memory;
  bool modules_valid = false;
  bool flush_pending = false;
  int64_t last_rebuild_ns = 0;
};

RemoteUnwinder::RemoteUnwinder() : impl_(new Impl) {}
RemoteUnwinder::~RemoteUnwinder() = default;

int RemoteUnwinder::Unwind(const StackSnapshot& snapshot, uint64_t* pcs, int max_depth,
                           bool* truncated) {
  return impl_->Unwind(snapshot, pcs, max_depth, truncated);
}

void RemoteUnwinder::InvalidateModules() {
  impl_->modules_valid = false;
  impl_->flush_pending = true;
}

}  // namespace agent
}  // namespace stackstream
