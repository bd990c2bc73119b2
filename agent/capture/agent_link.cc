// AgentLink (see agent_link.h).
#include "capture/agent_link.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "capture/capture_format.h"
#include "capture/host_log.h"
#include "capture/unix_address.h"

extern char** environ;

namespace stackstream {
namespace agent {
namespace {

constexpr int kMaxAncestors = 32;


// The stackstream-agent binary for a helper: STACKSTREAM_AGENT_BIN, else
// ../bin/stackstream-agent next to this library, else the library's folder.
std::string FindAgentBinary() {
  const char* env = getenv("STACKSTREAM_AGENT_BIN");
  if (env != nullptr && env[0] != '\0') return access(env, X_OK) == 0 ? env : "";
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&FindAgentBinary), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  char real[PATH_MAX];
  if (realpath(info.dli_fname, real) == nullptr) return "";
  std::string dir = real;
  size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  for (const std::string& candidate :
       {dir + "/../bin/stackstream-agent", dir + "/stackstream-agent"}) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// fork() without running anyone's atfork handlers: the child only calls
// async-signal-safe functions before execve or _exit.
pid_t RawFork() { return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

}  // namespace

std::string HelperSocketName(uid_t uid, pid_t pid, uint64_t start_ticks) {
  char buf[96];
  snprintf(buf, sizeof buf, "@stackstream-helper.%u.%d.%llu", static_cast<unsigned>(uid),
           static_cast<int>(pid), static_cast<unsigned long long>(start_ticks));
  return buf;
}

bool ReadProcStat(pid_t pid, uint64_t* start_ticks, pid_t* ppid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  char* p = strrchr(buf, ')');
  if (p == nullptr) return false;
  p += 2;  // the state field
  int field = 3;
  unsigned long long value = 0;
  *ppid = 0;
  *start_ticks = 0;
  while (*p != '\0' && field <= 22) {
    char* end = p;
    while (*end != ' ' && *end != '\0') ++end;
    if (field == 4 || field == 22) {
      value = strtoull(p, nullptr, 10);
      if (field == 4) *ppid = static_cast<pid_t>(value);
      else *start_ticks = value;
    }
    if (*end == '\0') break;
    p = end + 1;
    ++field;
  }
  return field >= 22;
}

bool AgentLink::ConnectTo(const std::string& address) {
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(address, &sa, &len)) return false;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    close(fd);
    return false;
  }
  // Large enough for a module snapshot of a big program.
  int bytes = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  fd_ = fd;
  address_ = address;
  return true;
}

bool AgentLink::SpawnHelper(std::string* address) {
  std::string bin = FindAgentBinary();
  if (bin.empty()) {
    HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                "no stackstream-agent found next to the library (set STACKSTREAM_AGENT_BIN); "
                "profiling is off for this process");
    return false;
  }
  uint64_t start = 0;
  pid_t ppid = 0;
  if (!ReadProcStat(getpid(), &start, &ppid)) return false;
  std::string name = HelperSocketName(getuid(), getpid(), start);
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(name, &sa, &len)) return false;
  int listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) return false;
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(listen_fd, 256) != 0) {
    close(listen_fd);
    return false;
  }
  // Everything the child needs is prepared here: after the fork it only calls
  // async-signal-safe functions.
  std::vector<std::string> env_store;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (strncmp(*e, "LD_PRELOAD=", 11) == 0 || strncmp(*e, "STACKSTREAM_", 12) == 0) continue;
    env_store.emplace_back(*e);
  }
  env_store.emplace_back("STACKSTREAM_HELPER=1");
  std::vector<char*> envp;
  for (std::string& s : env_store) envp.push_back(&s[0]);
  envp.push_back(nullptr);
  std::string listen_arg = "3";
  char arg0[] = "stackstream-agent";
  char arg1[] = "--helper";
  char arg2[] = "--listen-fd";
  char* argv[] = {arg0, arg1, arg2, &listen_arg[0], nullptr};
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    close(listen_fd);
    return false;
  }
  const char* bin_path = bin.c_str();
  pid_t child = RawFork();
  if (child == 0) {
    // Intermediate: fork the helper and exit, so the helper is not our child.
    pid_t helper = RawFork();
    if (helper != 0) _exit(helper > 0 ? 0 : 1);
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    if (listen_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(listen_fd, 3);  // dup2 clears FD_CLOEXEC on the new descriptor
    }
    execve(bin_path, argv, envp.data());
    int err = errno;
    ssize_t w = write(status_pipe[1], &err, sizeof err);
    (void)w;
    _exit(127);
  }
  close(status_pipe[1]);
  bool ok = false;
  if (child > 0) {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    // EOF: the helper's execve closed the pipe (success); an int: its errno.
    int err = 0;
    ssize_t n;
    do {
      n = read(status_pipe[0], &err, sizeof err);
    } while (n < 0 && errno == EINTR);
    ok = n == 0;
    if (!ok) {
      HostLogOnce(kLogKeyNoAgent, HostLogLevel::kWarn,
                  "cannot start %s: %s; profiling is off for this process", bin_path,
                  n > 0 ? strerror(err) : "exec failed");
    }
  }
  close(status_pipe[0]);
  if (ok) ok = ConnectTo(name);
  close(listen_fd);  // the helper holds its own copy
  if (ok) *address = name;
  return ok;
}

bool AgentLink::Connect(const std::string& daemon_socket, bool may_spawn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (!daemon_socket.empty() && ConnectTo(daemon_socket)) {
    description_ = "daemon " + daemon_socket;
    return true;
  }
  uid_t uid = getuid();
  pid_t pid = getppid();
  for (int i = 0; i < kMaxAncestors && pid > 1; ++i) {
    uint64_t start = 0;
    pid_t parent = 0;
    if (!ReadProcStat(pid, &start, &parent)) break;
    std::string name = HelperSocketName(uid, pid, start);
    if (ConnectTo(name)) {
      description_ = "helper " + name;
      return true;
    }
    pid = parent;
  }
  if (!may_spawn) return false;
  std::string name;
  if (!SpawnHelper(&name)) return false;
  description_ = "new helper " + name;
  return true;
}

bool AgentLink::Reconnect(const std::string& daemon_socket, bool may_spawn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    if (!address_.empty() && ConnectTo(address_)) return true;
    // A node daemon that went away is waited for (it is being restarted):
    // never replaced by a private helper behind the operator's back.
    if (!address_.empty() && address_ == daemon_socket) return false;
  }
  return Connect(daemon_socket, may_spawn);
}

int AgentLink::Send(const void* msg, size_t len, const int* fds, int nfds) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return ENOTCONN;
  iovec iov;
  iov.iov_base = const_cast<void*>(msg);
  iov.iov_len = len;
  msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
  if (nfds > 0) {
    if (nfds > 3) nfds = 3;
    memset(control, 0, sizeof control);
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(static_cast<size_t>(nfds) * sizeof(int));
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(static_cast<size_t>(nfds) * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, static_cast<size_t>(nfds) * sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(fd_, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return 0;
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) return EAGAIN;
  close(fd_);
  fd_ = -1;
  return err;
}

bool AgentLink::WaitFor(uint32_t type, int timeout_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return false;
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (elapsed >= timeout_ms) return false;
    pollfd p = {fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout_ms - elapsed));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    capture::SimpleMessage m;
    ssize_t n = recv(fd_, &m, sizeof m, MSG_DONTWAIT);
    if (n == 0) return false;  // the agent went away
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    if (static_cast<size_t>(n) >= sizeof m && m.header.magic == capture::kMessageMagic &&
        m.header.type == type) {
      return true;
    }
  }
}

bool AgentLink::PeerClosed() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return true;
  pollfd p = {fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
  if (p.revents & POLLIN) {
    char buf[64];
    ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);  // nothing expected: discard
    return n == 0;
  }
  return false;
}

void AgentLink::Close() {
  // No lock: used in a forked child, where the mutex may be in any state
  // (the child handler re-creates the link anyway).
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace agent
}  // namespace stackstream
