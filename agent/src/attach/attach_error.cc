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

std::string ExplainAttachError(pid_t pid, int error, const std::string& what) {
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
  // 38 CAP_PERFMON, 21 CAP_SYS_ADMIN, 19 CAP_SYS_PTRACE.
  const bool perfmon = HasCapability(38) || HasCapability(21);
  const bool ptrace_cap = HasCapability(19);
  const std::string paranoid_text = ReadFirstLine("/proc/sys/kernel/perf_event_paranoid");
  const int paranoid = paranoid_text.empty() ? 2 : atoi(paranoid_text.c_str());
  const std::string seccomp = StatusField("self", "Seccomp");
  const long target_uid = ProcessUid(pid);
  const long uid = static_cast<long>(getuid());
  out << "not allowed to attach to pid " << p << " (perf_event_open: " << strerror(error)
      << "): ";
  if (seccomp == "2") {
    out << "a seccomp filter on this process blocks perf_event_open (container runtimes "
           "such as Docker do by default): run stackstream attach with a seccomp profile "
           "that allows perf_event_open (e.g. docker run --security-opt "
           "seccomp=unconfined, or --cap-add PERFMON), or from the host";
    return out.str();
  }
  if (paranoid > 2 && !perfmon) {
    out << "kernel.perf_event_paranoid is " << paranoid
        << "; attaching needs 2 or lower (sysctl -w kernel.perf_event_paranoid=2), or "
           "CAP_PERFMON / root";
    return out.str();
  }
  if (target_uid >= 0 && target_uid != uid && !ptrace_cap) {
    out << "missing ptrace rights: pid " << p << " runs as uid " << target_uid
        << " and you are uid " << uid << "; attach as that user or as root (CAP_SYS_PTRACE)";
    return out.str();
  }
  std::string scope = ReadFirstLine("/proc/sys/kernel/yama/ptrace_scope");
  out << "missing ptrace rights over pid " << p;
  if (!scope.empty() && scope != "0") {
    out << " (kernel.yama.ptrace_scope is " << scope << ")";
  }
  out << "; the target may be non-dumpable (setuid, prctl PR_SET_DUMPABLE 0) or "
         "kernel.perf_event_paranoid ("
      << paranoid << ") may be too high for this user: attach as root (CAP_SYS_PTRACE + "
                     "CAP_PERFMON)";
  return out.str();
}

}  // namespace agent
}  // namespace stackstream
