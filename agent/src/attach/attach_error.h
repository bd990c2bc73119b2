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

// The message for perf_event_open / mmap of "pid"'s thread failing with "error" (errno).
std::string ExplainAttachError(pid_t pid, int error, const std::string& what);

// The real uid of process "pid", or -1 when it cannot be read.
long ProcessUid(pid_t pid);

}  // namespace agent
}  // namespace stackstream
