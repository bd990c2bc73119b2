#include "attach/attach_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace stackstream {
namespace agent {
namespace {

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return line;
}

// A field of /proc/PID/status ("Uid", "Seccomp", "CapEff"), or "".
std::string StatusField(const std::string& pid, const std::string& name) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size() + 1, name + ":") == 0) {
      size_t b = line.find_first_not_of(" \t", name.size() + 1);
      return b == std::string::npos ? "" : line.substr(b);
    }
  }
  return "";
}

bool HasCapability(int cap) {
  std::string eff = StatusField("self", "CapEff");
  if (eff.empty()) return false;
  unsigned long long bits = strtoull(eff.c_str(), nullptr, 16);
  return (bits >> cap) & 1;
}

}  // namespace

long ProcessUid(pid_t pid) {
  std::string uid = StatusField(std::to_string(pid), "Uid");
  if (uid.empty()) return -1;
  return strtol(uid.c_str(), nullptr, 10);
}

AttachFacts ReadAttachFacts(pid_t pid) {
  AttachFacts f;
  // 38 CAP_PERFMON, 21 CAP_SYS_ADMIN, 19 CAP_SYS_PTRACE.
  f.perfmon = HasCapability(38) || HasCapability(21);
  f.ptrace_cap = HasCapability(19);
  const std::string paranoid = ReadFirstLine("/proc/sys/kernel/perf_event_paranoid");
  f.perf_event_paranoid = paranoid.empty() ? 2 : atoi(paranoid.c_str());
  f.ptrace_scope = ReadFirstLine("/proc/sys/kernel/yama/ptrace_scope");
  f.seccomp = StatusField("self", "Seccomp");
  f.uid = static_cast<long>(getuid());
  f.target_uid = ProcessUid(pid);
  return f;
}

std::string ExplainAttachError(pid_t pid, int error, const std::string& what) {
  return ExplainAttachError(pid, error, what, ReadAttachFacts(pid));
}

std::string ExplainAttachError(pid_t pid, int error, const std::string& what,
                               const AttachFacts& facts) {
  const std::string p = std::to_string(pid);
  std::ostringstream out;
  if (error == ESRCH) {
    out << "no process with pid " << p << " (it may have exited)";
    return out.str();
  }
  if (error != EACCES && error != EPERM) {
    out << "cannot attach to pid " << p << ": " << what << ": " << strerror(error);
    if (error == EMFILE) out << " (raise the open-files limit: ulimit -n)";
    if (error == ENOENT || error == ENOSYS || error == EOPNOTSUPP) {
      out << " (this kernel has no perf events for software clocks)";
    }
    return out.str();
  }
  if (what != "perf_event_open") {
    out << "cannot attach to pid " << p << ": " << what << ": " << strerror(error)
        << " (perf ring buffers are limited by kernel.perf_event_mlock_kb and "
           "RLIMIT_MEMLOCK; raise them, or attach to fewer threads)";
    return out.str();
  }
  const int paranoid = facts.perf_event_paranoid;
  out << "not allowed to attach to pid " << p << " (perf_event_open: " << strerror(error)
      << "): ";
  if (facts.seccomp == "2") {
    out << "a seccomp filter on this process blocks perf_event_open (container runtimes "
           "such as Docker do by default): run stackstream attach with a seccomp profile "
           "that allows perf_event_open (e.g. docker run --security-opt "
           "seccomp=unconfined, or --cap-add PERFMON), or from the host";
    return out.str();
  }
  if (paranoid > 2 && !facts.perfmon) {
    out << "kernel.perf_event_paranoid is " << paranoid
        << "; attaching needs 2 or lower (sysctl -w kernel.perf_event_paranoid=2), or "
           "CAP_PERFMON / root";
    return out.str();
  }
  if (facts.target_uid >= 0 && facts.target_uid != facts.uid && !facts.ptrace_cap) {
    out << "missing ptrace rights: pid " << p << " runs as uid " << facts.target_uid
        << " and you are uid " << facts.uid
        << "; attach as that user or as root (CAP_SYS_PTRACE)";
    return out.str();
  }
  out << "missing ptrace rights over pid " << p;
  if (!facts.ptrace_scope.empty() && facts.ptrace_scope != "0") {
    out << " (kernel.yama.ptrace_scope is " << facts.ptrace_scope;
    if (facts.ptrace_scope == "3") {
      out << ": no process may attach; only a reboot lowers it";
    } else if (facts.ptrace_scope == "2") {
      out << ": only CAP_SYS_PTRACE may attach; attach as root, or "
             "sysctl -w kernel.yama.ptrace_scope=1";
    }
    out << ")";
  }
  out << "; the target may be non-dumpable (setuid, prctl PR_SET_DUMPABLE 0) or "
         "kernel.perf_event_paranoid ("
      << paranoid << ") may be too high for this user: attach as root (CAP_SYS_PTRACE + "
                     "CAP_PERFMON)";
  return out.str();
}

}  // namespace agent
}  // namespace stackstream
