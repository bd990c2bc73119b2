// StackSnapshot: what the host's signal handler copied out of an interrupted
// thread (capture::SampleRecord + the stack bytes after it): the general
// registers and a copy of the top of its stack. Plain data; x86_64 only.
// RemoteUnwinder (remote_unwinder.h) turns it into program counters.
#pragma once

#include <cstddef>
#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

// Register numbers follow libunwind's x86_64 numbering (capture_format.h).
constexpr int kSnapshotRegs = capture::kSnapshotRegs;
constexpr int kRegRbp = capture::kRegRbp;
constexpr int kRegRsp = capture::kRegRsp;
constexpr int kRegRip = capture::kRegRip;

struct StackSnapshot {
  uint64_t regs[capture::kSnapshotRegs] = {};
  uint64_t stack_start = 0;        // address the copy starts at (the SP)
  const uint8_t* stack = nullptr;  // copy of [stack_start, stack_start + stack_size)
  size_t stack_size = 0;
};

}  // namespace agent
}  // namespace stackstream
