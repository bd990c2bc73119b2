#include "server/agent_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <list>
#include <memory>
#include <thread>

#include "capture/unix_address.h"
#include "log.h"
#include "pipeline/symbolizer.h"
#include "server/client_session.h"
#include "unwind/elf_file_cache.h"

namespace stackstream {
namespace agent {
namespace {

constexpr int kPollIntervalMs = 20;
// Connected hosts: per user and in all (a PostgreSQL server with a few
// hundred backends is far from either).
constexpr size_t kMaxSessionsPerUid = 4096;
constexpr size_t kMaxSessions = 16384;

std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


// A session whose host is gone, delivering on a thread of its own.
struct Finishing {
  std::unique_ptr<ClientSession> session;
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace

int ListenOn(const std::string& spec, std::string* error) {
  std::string address = spec.rfind("unix:", 0) == 0 ? spec.substr(5) : spec;
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(address, &sa, &len)) {
    *error = "bad socket address \"" + spec + "\"";
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  if (address[0] != '@') {
    // The folder (e.g. /run/stackstream), and a stale socket nobody serves.
    size_t slash = address.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      std::string dir = address.substr(0, slash);
      for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') mkdir(dir.substr(0, i).c_str(), 0755);
      }
      // Whoever may write the folder may put another socket in our place
      // (and see every host's samples): it must be ours alone to write.
      struct stat dst;
      if (stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        close(fd);
        *error = "cannot use the folder " + dir + " of " + address;
        return -1;
      }
      if (dst.st_uid != geteuid() || (dst.st_mode & (S_IWGRP | S_IWOTH))) {
        close(fd);
        *error = "refusing to listen in " + dir + ": it must belong to this user (uid " +
                 std::to_string(geteuid()) + ") and be writable by nobody else (e.g. " +
                 "/run/stackstream, mode 0755); other users could replace the socket";
        return -1;
      }
    }
    struct stat st;
    if (lstat(address.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      bool alive = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&sa), len) == 0;
      if (probe >= 0) close(probe);
      if (alive) {
        close(fd);
        *error = "another stackstream-agent is serving " + address;
        return -1;
      }
      unlink(address.c_str());
    }
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd, 1024) != 0) {
    *error = "cannot listen on " + address + ": " + strerror(errno);
    close(fd);
    return -1;
  }
  // Every user's processes may hand their samples to the node daemon.
  if (address[0] != '@') chmod(address.c_str(), 0666);
  return fd;
}

int RunAgentServer(const ServerOptions& options) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  fcntl(options.listen_fd, F_SETFL, fcntl(options.listen_fd, F_GETFL) | O_NONBLOCK);

  SharedState shared;
  shared.files = std::make_shared<ElfFileCache>();
  pipeline::Symbolizer::Options sym;
  sym.system_library_lines = options.system_library_lines;
  sym.files = shared.files;  // one cache of module files for unwinding and symbols
  shared.symbolizer = std::make_unique<pipeline::Symbolizer>(sym);
  shared.default_collectors = options.default_collectors;

  std::list<std::unique_ptr<ClientSession>> sessions;
  uint64_t sessions_refused = 0;
  std::list<Finishing> finishing;
  bool logs_to_host = false;
  bool had_client = false;
  int64_t idle_since = MonoNs();
  int64_t next_poll = 0;
  std::vector<pollfd> fds;
  for (;;) {
    bool stopping = g_stop.load();
    fds.clear();
    fds.push_back({options.listen_fd, static_cast<short>(stopping ? 0 : POLLIN), 0});
    // A hung-up socket stays readable: leave it out (fd -1 is ignored), or
    // poll would return at once until the session is finished.
    for (auto& s : sessions) fds.push_back({s->connected() ? s->fd() : -1, POLLIN, 0});
    int r = poll(fds.data(), fds.size(), kPollIntervalMs);
    if (r < 0 && errno != EINTR) {
      AgentLog()->error("poll: {}", strerror(errno));
      break;
    }
    int64_t now = MonoNs();
    if (r > 0 && (fds[0].revents & POLLIN)) {
      for (;;) {
        int cfd = accept4(options.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) break;
        ucred cred;
        socklen_t cl = sizeof cred;
        memset(&cred, 0, sizeof cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.pid <= 0) {
          close(cfd);  // no kernel-vouched identity: nobody to serve
          continue;
        }
        // One user's processes cannot take every slot (descriptors, memory)
        // from the others.
        size_t of_uid = 0;
        for (const auto& s : sessions) of_uid += s->peer_uid() == cred.uid;
        if (of_uid >= kMaxSessionsPerUid || sessions.size() >= kMaxSessions) {
          ++sessions_refused;
          LogRateLimited("session_refused", spdlog::level::warn, "refused a connection from pid {} (uid {}): {} sessions of that user, "
                           "{} in all (limits {}, {}); refused so far: {}", cred.pid, cred.uid,
                           of_uid, sessions.size(), kMaxSessionsPerUid, kMaxSessions,
                           sessions_refused);
          close(cfd);
          continue;
        }
        sessions.push_back(
            std::make_unique<ClientSession>(cfd, cred.pid, cred.uid, cred.gid, &shared));
        had_client = true;
      }
    }
    size_t i = 1;
    for (auto& s : sessions) {
      if (i < fds.size() && fds[i].revents != 0) s->ReadMessages();
      ++i;
    }
    // A private helper logs where its first host logs (its stderr, at its
    // STACKSTREAM_LOG level): the helper's own stderr is /dev/null.
    if (options.helper && !logs_to_host) {
      for (auto& s : sessions) {
        if (s->config() == nullptr) continue;
        if (s->host_stderr() >= 0) dup2(s->host_stderr(), 2);
        InitAgentLog(*s->config());
        logs_to_host = true;
        break;
      }
    }
    if (now >= next_poll || stopping) {
      next_poll = now + kPollIntervalMs * 1000000LL;
      for (auto it = sessions.begin(); it != sessions.end();) {
        (*it)->Poll(now, stopping);
        if (!(*it)->Done()) {
          ++it;
          continue;
        }
        Finishing f;
        f.session = std::move(*it);
        ClientSession* raw = f.session.get();
        auto done = f.done;
        int64_t deadline = now + options.finish_deadline_ms * 1000000LL;
        f.thread = std::thread([raw, done, deadline] {
          try {
            raw->Finish(deadline);
          } catch (...) {
          }
          done->store(true);
        });
        finishing.push_back(std::move(f));
        it = sessions.erase(it);
      }
    }
    for (auto it = finishing.begin(); it != finishing.end();) {
      if (!it->done->load()) {
        ++it;
        continue;
      }
      it->thread.join();
      it = finishing.erase(it);
    }
    if (!sessions.empty() || !finishing.empty()) idle_since = now;
    if (options.helper && logs_to_host && sessions.empty() && finishing.empty()) {
      // Every host is gone and its data is out: let go of the host's stderr
      // at once, so that a caller reading it from a pipe sees EOF now.
      int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (devnull >= 0) {
        dup2(devnull, 2);
        close(devnull);
      }
      logs_to_host = false;
    }
    if (stopping && sessions.empty() && finishing.empty()) break;
    if (options.helper && sessions.empty() && finishing.empty()) {
      // Gone quiet: every host left and its data is out (or no host came).
      int64_t idle = had_client ? 200 : options.helper_idle_exit_ms;
      if (now - idle_since >= idle * 1000000LL) break;
    }
  }
  for (auto& f : finishing) f.thread.join();
  close(options.listen_fd);
  return 0;
}

}  // namespace agent
}  // namespace stackstream
