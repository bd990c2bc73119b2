// Test helpers: capture a StackSnapshot of the calling thread at a known
// point (registers via getcontext, stack copied with process_vm_readv so
// that ASan does not see reads of poisoned stack redzones), and describe the
// loaded modules the way the host does (capture::ScanModules ->
// capture::ModuleMessage -> ModuleSet::FromMessages).
#pragma once

#include <ucontext.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_format.h"
#include "unwind/module_set.h"
#include "unwind/stack_snapshot.h"

namespace stackstream {
namespace agent {
namespace testing {

struct CapturedStack {
  uint64_t regs[kSnapshotRegs] = {};
  uint64_t stack_start = 0;
  std::vector<uint8_t> stack;
  // unw_backtrace() taken right after the registers, in the same function.
  std::vector<uint64_t> backtrace;

  StackSnapshot Snapshot() const {
    StackSnapshot s;
    for (int i = 0; i < kSnapshotRegs; ++i) s.regs[i] = regs[i];
    s.stack_start = stack_start;
    s.stack = stack.data();
    s.stack_size = stack.size();
    return s;
  }
};

// The general registers of "uc" in capture_format.h's order (what the host's
// signal handler records).
void RegsFromUcontext(const ucontext_t* uc, uint64_t* regs);

// Highest address of the calling thread's stack.
uint64_t ThreadStackEnd();

// Captures registers as of a point inside this (non-inlined) function, the
// stack from there to the thread's stack end (at most "max_stack" bytes), and
// unw_backtrace() from the same function.
void CaptureHere(CapturedStack* out, size_t max_stack = 8 << 20);

// Copies [addr, addr + len) with process_vm_readv; false on failure.
bool CopyOwnMemory(uint64_t addr, void* out, size_t len);

// One module as capture::ScanModules reports it.
struct ScannedModule {
  capture::ModuleMessage message;
  std::string path;
  // The message's bytes (header.size and path_bytes set for "path").
  std::string Raw() const;
};

// The modules loaded now, as the host would send them.
std::vector<ScannedModule> ScanModules();
std::vector<std::string> RawMessages(const std::vector<ScannedModule>& modules);
// ModuleSet::FromMessages(RawMessages(ScanModules()), root).
std::shared_ptr<const ModuleSet> ScanModuleSet(const std::string& root = "");
// The scanned module whose path is "path", or nullptr.
const ScannedModule* FindModule(const std::vector<ScannedModule>& modules, const std::string& path);

}  // namespace testing
}  // namespace agent
}  // namespace stackstream
