// Why an attach was refused, in words a user can act on: a missing pid, the
// kernel's perf_event_paranoid setting (with the value needed), missing
// ptrace rights over the target (another user, ptrace_scope), or a seccomp
// filter (containers) blocking perf_event_open.
//
// Thread-safety: thread-safe (reads /proc).
#pragma once

#include <sys/types.h>

#include <string>

namespace stackstream {
namespace agent {

// What decides whether perf_event_open on another process is allowed.
struct AttachFacts {
  int perf_event_paranoid = 2;  // kernel.perf_event_paranoid
  std::string ptrace_scope;     // kernel.yama.ptrace_scope ("" without Yama)
  std::string seccomp;          // this process's Seccomp mode ("2": a filter)
  bool perfmon = false;         // CAP_PERFMON or CAP_SYS_ADMIN
  bool ptrace_cap = false;      // CAP_SYS_PTRACE
  long uid = 0;                 // ours (real)
  long target_uid = -1;         // the target's (real), -1 unknown
};

// The facts of this process and of "pid", read from /proc.
AttachFacts ReadAttachFacts(pid_t pid);

// The message for perf_event_open / mmap of "pid"'s thread failing with
// "error" (errno), given "facts".
std::string ExplainAttachError(pid_t pid, int error, const std::string& what,
                               const AttachFacts& facts);

// The same, with the facts read from /proc.
std::string ExplainAttachError(pid_t pid, int error, const std::string& what);

// The real uid of process "pid", or -1 when it cannot be read.
long ProcessUid(pid_t pid);

}  // namespace agent
}  // namespace stackstream
