// The sampling signal: choosing it, installing the handler, checking that it
// is still ours, and the perf fd -> ThreadState table the handler reads.
//
// Thread-safety: InstallSampleHandler / PickSampleSignal / HandlerIsInstalled
// are called by the lifecycle code (one thread at a time). Register/
// UnregisterPerfFd and SetSamplingEnabled are lock-free and may race with
// the handler by design. The handler itself (SampleSignalHandler) is the
// async-signal-safe zone: see the contract at the top of signal_handler.cc.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>

#include "capture/thread_state.h"

namespace stackstream {
namespace agent {

// Bytes of stack the handler copies at most (from SP toward the stack end).
constexpr uint32_t kStackCopyBytes = capture::kStackCopyBytes;

// Perf fds above this are not used (the thread falls back to a POSIX timer).
constexpr int kPerfFdTableSize = 8192;

// A real-time signal whose disposition is SIG_DFL, or -1 if none is free.
int PickSampleSignal();

// Installs the handler for "signo" (SA_SIGINFO | SA_RESTART | SA_ONSTACK).
// Fails (returns false) if someone else's handler is there.
bool InstallSampleHandler(int signo);

// True while the disposition of "signo" is still our handler.
bool HandlerIsInstalled(int signo);

// Global on/off switch read by the handler.
void SetSamplingEnabled(bool enabled);
bool SamplingEnabled();

// Lets the handler map a perf overflow signal (si_fd) to its thread.
bool RegisterPerfFd(int fd, ThreadState* ts);
void UnregisterPerfFd(int fd);
// In a forked child: forget every entry (the fds were the parent's).
void ClearPerfFdTable();

// Signals of our number that were not ours (sent by kill/sigqueue, or for
// an unknown fd), since start.
uint64_t ForeignSignalCount();

// The module generation the handler stamps on every sample (the host bumps
// it after it has sent the module snapshot of that generation).
void SetModuleGeneration(uint64_t generation);
// The generation set above (async-signal-safe; heap samples stamp it too).
uint64_t ModuleGeneration();

// The handler. Exposed for the handler benchmark and tests.
void SampleSignalHandler(int signo, siginfo_t* info, void* ucontext);

}  // namespace agent
}  // namespace stackstream
