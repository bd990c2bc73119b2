// RegsFromUcontext: the general registers of a signal's ucontext in the
// order of capture_format.h (libunwind's x86_64 numbering). Header-only.
// ASYNC-SIGNAL-SAFE: plain loads and stores, no calls (the signal handler
// uses it; so do the unwinder tests, to make the same snapshots).
#pragma once

#include <sys/ucontext.h>

#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace capture {

inline void RegsFromUcontext(const ucontext_t* uc, uint64_t regs[kSnapshotRegs]) {
  const greg_t* g = uc->uc_mcontext.gregs;
  regs[0] = static_cast<uint64_t>(g[REG_RAX]);
  regs[1] = static_cast<uint64_t>(g[REG_RDX]);
  regs[2] = static_cast<uint64_t>(g[REG_RCX]);
  regs[3] = static_cast<uint64_t>(g[REG_RBX]);
  regs[4] = static_cast<uint64_t>(g[REG_RSI]);
  regs[5] = static_cast<uint64_t>(g[REG_RDI]);
  regs[6] = static_cast<uint64_t>(g[REG_RBP]);
  regs[7] = static_cast<uint64_t>(g[REG_RSP]);
  regs[8] = static_cast<uint64_t>(g[REG_R8]);
  regs[9] = static_cast<uint64_t>(g[REG_R9]);
  regs[10] = static_cast<uint64_t>(g[REG_R10]);
  regs[11] = static_cast<uint64_t>(g[REG_R11]);
  regs[12] = static_cast<uint64_t>(g[REG_R12]);
  regs[13] = static_cast<uint64_t>(g[REG_R13]);
  regs[14] = static_cast<uint64_t>(g[REG_R14]);
  regs[15] = static_cast<uint64_t>(g[REG_R15]);
  regs[16] = static_cast<uint64_t>(g[REG_RIP]);
}

}  // namespace capture
}  // namespace stackstream
