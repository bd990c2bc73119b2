// StackSnapshot: what the signal handler copies out of an interrupted thread
// so that its stack can be unwound later, on the drain thread: the general
// registers and a copy of the top of its stack. Plain data; x86_64 only.
//
// The handler fills it (async-signal-safe: reads only the ucontext and the
// thread's own stack between SP and the stack end recorded at registration);
// RemoteUnwinder (remote_unwinder.h) turns it into program counters.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stackstream {
namespace agent {

// Register numbers follow libunwind's x86_64 numbering (UNW_X86_64_RAX = 0 ...
// UNW_X86_64_R15 = 15, UNW_X86_64_RIP = 16).
constexpr int kSnapshotRegs = 17;
constexpr int kRegRsp = 7;
constexpr int kRegRbp = 6;
constexpr int kRegRip = 16;

struct StackSnapshot {
  uint64_t regs[kSnapshotRegs] = {};
  uint64_t stack_start = 0;        // address the copy starts at (the SP)
  const uint8_t* stack = nullptr;  // copy of [stack_start, stack_start + stack_size)
  size_t stack_size = 0;
};

}  // namespace agent
}  // namespace stackstream
