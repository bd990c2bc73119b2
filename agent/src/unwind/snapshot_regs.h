// Helpers to fill a StackSnapshot's registers from a signal handler's
// ucontext (x86_64 Linux). Header-only, async-signal-safe: plain loads and
// stores, no calls.
#pragma once

#include <sys/ucontext.h>

#include <cstdint>

#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {

// Copies the general registers of "uc" into "regs" in libunwind's x86_64
// numbering (see stack_snapshot.h).
inline void SnapshotRegsFromUcontext(const ucontext_t* uc, uint64_t regs[kSnapshotRegs]) {
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

}  // namespace agent
}  // namespace stackstream
