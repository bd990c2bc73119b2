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
#include <map>
#include <memory>
#include <thread>

#include "attach/attach_command.h"
#include "attach/attach_error.h"
#include "attach/attach_protocol.h"
#include "attach/attach_session.h"
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


// A session whose host is gone (or an attach that ended), delivering on a
// thread of its own.
struct Finishing {
  std::shared_ptr<void> owner;  // the session
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
};

// A connection whose first message has not arrived yet: a host's hello or
// an attach request decides what it becomes.
struct Pending {
  int fd;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  int64_t since_ns;
};

// An attach a client asked for (attach_protocol.h), running in this daemon.
struct AttachJob {
  std::shared_ptr<AttachSession> session;
  uid_t uid = 0;        // the client's, from SO_PEERCRED
  int client_fd = -1;   // -1 once the client has gone (the attach goes on)
  int64_t start_ns = 0;
  int64_t end_ns = 0;   // 0: until the target exits or a stop
  bool stop = false;
};

void SendAttachStatus(int fd, AttachState state, const std::string& text) {
  if (fd < 0) return;
  std::string buf = EncodeAttachStatus(state, text);
  ssize_t n = send(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)n;
}

// Reads an attach request from "p.fd" and starts it. Null when refused (the
// client was told why and its socket closed).
std::unique_ptr<AttachJob> StartAttach(const Pending& p, SharedState* shared) {
  alignas(8) char buf[capture::kMaxMessageBytes];
  ssize_t n = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
  auto refuse = [&p](const std::string& why) {
    SendAttachStatus(p.fd, kAttachFailed, why);
    close(p.fd);
    return nullptr;
  };
  AttachRequest m;
  std::string error;
  if (n < 0 || !DecodeAttachRequest(buf, static_cast<size_t>(n), &m, &error)) {
    return refuse(n < 0 ? "malformed attach request: nothing received" : error);
  }
  std::map<std::string, std::string>& vars = m.vars;
  // The daemon may be allowed more than its client: a client attaches only
  // to its own processes (root to any).
  long target_uid = ProcessUid(m.pid);
  if (target_uid < 0) return refuse("no process with pid " + std::to_string(m.pid));
  if (p.uid != 0 && static_cast<long>(p.uid) != target_uid) {
    return refuse("not allowed to attach to pid " + std::to_string(m.pid) +
                  ": missing ptrace rights: it runs as uid " + std::to_string(target_uid) +
                  " and you are uid " + std::to_string(p.uid) +
                  "; attach as that user or as root");
  }
  if (vars.count("STACKSTREAM_OUTPUT") != 0 && p.uid != geteuid()) {
    return refuse("--output through the node daemon: the daemon runs as uid " +
                  std::to_string(geteuid()) + " and writes no files for uid " +
                  std::to_string(p.uid) + "; use --no-daemon to write the file yourself");
  }
  if (vars.count("STACKSTREAM_COLLECTOR") == 0 && !shared->default_collectors.empty()) {
    std::string all;
    for (const std::string& a : shared->default_collectors) all += (all.empty() ? "" : ",") + a;
    vars["STACKSTREAM_COLLECTOR"] = all;
  }
  auto job = std::make_unique<AttachJob>();
  job->session =
      std::make_shared<AttachSession>(m.pid, std::move(vars), shared->files, shared->symbolizer.get());
  if (!job->session->Start(&error)) return refuse(error);
  job->uid = p.uid;
  job->client_fd = p.fd;
  job->start_ns = p.since_ns;
  if (m.duration_ms > 0) job->end_ns = MonoNs() + m.duration_ms * 1000000LL;
  std::string started = AttachStartedText(*job->session);
  AgentLog()->info("attach for uid {}: {}", static_cast<unsigned>(p.uid), started);
  SendAttachStatus(p.fd, kAttachStarted, started);
  return job;
}

// A stop from the client, or its going away (the attach then goes on).
void ReadAttachClient(AttachJob* job) {
  while (job->client_fd >= 0) {
    capture::MessageHeader h;
    ssize_t n = recv(job->client_fd, &h, sizeof h, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      close(job->client_fd);
      job->client_fd = -1;
      return;
    }
    if (n == sizeof h && h.magic == capture::kMessageMagic && h.type == kAttachStop) job->stop = true;
  }
}

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
  std::list<Pending> pending;
  std::list<std::unique_ptr<AttachJob>> attaches;
  std::list<Finishing> finishing;
  bool logs_to_host = false;
  bool had_client = false;
  int64_t idle_since = MonoNs();
  int64_t next_poll = 0;
  int64_t next_attach_poll = 0;
  std::vector<pollfd> fds;
  for (;;) {
    bool stopping = g_stop.load();
    fds.clear();
    fds.push_back({options.listen_fd, static_cast<short>(stopping ? 0 : POLLIN), 0});
    // A hung-up socket stays readable: leave it out (fd -1 is ignored), or
    // poll would return at once until the session is finished.
    for (auto& s : sessions) fds.push_back({s->connected() ? s->fd() : -1, POLLIN, 0});
    const size_t pending_at = fds.size();
    for (auto& p : pending) fds.push_back({p.fd, POLLIN, 0});
    // Attaches' perf rings: readable when half full (drained at once).
    const size_t attach_at = fds.size();
    for (auto& job : attaches) {
      for (int fd : job->session->event_fds()) fds.push_back({fd, POLLIN, 0});
    }
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
        // from the others: hosts, attaches and connections not yet sorted
        // all count.
        size_t of_uid = 0;
        for (const auto& s : sessions) of_uid += s->peer_uid() == cred.uid;
        for (const auto& p : pending) of_uid += p.uid == cred.uid;
        for (const auto& job : attaches) of_uid += job->uid == cred.uid;
        const size_t all = sessions.size() + pending.size() + attaches.size();
        if (of_uid >= kMaxSessionsPerUid || all >= kMaxSessions) {
          ++sessions_refused;
          LogRateLimited("session_refused", spdlog::level::warn, "refused a connection from pid {} (uid {}): {} sessions of that user, "
                           "{} in all (limits {}, {}); refused so far: {}", cred.pid, cred.uid,
                           of_uid, all, kMaxSessionsPerUid, kMaxSessions,
                           sessions_refused);
          close(cfd);
          continue;
        }
        pending.push_back(Pending{cfd, cred.pid, cred.uid, cred.gid, now});
        had_client = true;
      }
    }
    size_t i = 1;
    for (auto& s : sessions) {
      if (i < fds.size() && fds[i].revents != 0) s->ReadMessages();
      ++i;
    }
    // New connections: a host (hello first) or an attach request. Only
    // those polled above are looked at (their index is known).
    i = pending_at;
    for (auto it = pending.begin(); it != pending.end() && i < attach_at; ++i) {
      Pending p = *it;
      if (fds[i].fd != p.fd || fds[i].revents == 0) {
        ++it;
        continue;
      }
      capture::MessageHeader h;
      memset(&h, 0, sizeof h);
      ssize_t n = recv(p.fd, &h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        ++it;
        continue;
      }
      it = pending.erase(it);
      if (n == static_cast<ssize_t>(sizeof h) && h.magic == capture::kMessageMagic &&
          h.type == kAttachRequest) {
        if (stopping) {
          SendAttachStatus(p.fd, kAttachFailed, "the node daemon is stopping");
          close(p.fd);
          continue;
        }
        if (auto job = StartAttach(p, &shared)) attaches.push_back(std::move(job));
        continue;
      }
      sessions.push_back(std::make_unique<ClientSession>(p.fd, p.pid, p.uid, p.gid, &shared));
      sessions.back()->ReadMessages();
    }
    for (auto it = pending.begin(); it != pending.end();) {
      // A connection that says nothing for 10 s, or any when stopping.
      if (stopping || now - it->since_ns > 10 * 1000000000LL) {
        close(it->fd);
        it = pending.erase(it);
      } else {
        ++it;
      }
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
        ClientSession* raw = it->get();
        f.owner = std::shared_ptr<ClientSession>(std::move(*it));
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
    bool ring_ready = false;
    for (size_t k = attach_at; k < fds.size() && r > 0; ++k) {
      ring_ready = ring_ready || fds[k].revents != 0;
      // A thread of an attached process exited (its event hangs up):
      // close its event now, or poll would keep returning at once.
      if (fds[k].revents & (POLLHUP | POLLERR)) {
        for (auto& job : attaches) job->session->RescanThreadsSoon();
      }
    }
    if (now >= next_attach_poll || stopping || ring_ready) {
      next_attach_poll = now + kPollIntervalMs * 1000000LL;
      for (auto it = attaches.begin(); it != attaches.end();) {
        AttachJob* job = it->get();
        ReadAttachClient(job);
        const bool gone = job->session->TargetGone();
        const bool final =
            stopping || job->stop || gone || (job->end_ns > 0 && now >= job->end_ns);
        job->session->Poll(now, final);
        if (!job->session->Done()) {
          ++it;
          continue;
        }
        Finishing f;
        f.owner = job->session;
        auto session = job->session;
        auto done = f.done;
        int client = job->client_fd;
        double seconds = static_cast<double>(now - job->start_ns) / 1e9;
        int64_t deadline = now + options.finish_deadline_ms * 1000000LL;
        f.thread = std::thread([session, done, deadline, client, gone, seconds] {
          try {
            session->Finish(deadline);
            std::string text = AttachFinishedText(*session, gone, seconds);
            AgentLog()->info("attach ended: {}", text);
            SendAttachStatus(client, kAttachFinished, text);
          } catch (...) {
          }
          if (client >= 0) close(client);
          done->store(true);
        });
        finishing.push_back(std::move(f));
        it = attaches.erase(it);
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
    const bool busy =
        !sessions.empty() || !finishing.empty() || !attaches.empty() || !pending.empty();
    if (busy) idle_since = now;
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
    if (stopping && sessions.empty() && finishing.empty() && attaches.empty()) break;
    if (options.helper && !busy) {
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
