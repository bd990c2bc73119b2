#include "attach/attach_command.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <vector>

#include "attach/attach_protocol.h"
#include "attach/attach_session.h"
#include "capture/unix_address.h"
#include "log.h"
#include "pipeline/symbolizer.h"
#include "unwind/elf_file_cache.h"

namespace stackstream {
namespace agent {
namespace {

constexpr int kPollMs = 20;
constexpr int64_t kFinishMs = 5000;

std::atomic<bool> g_stop{false};
void OnStop(int) { g_stop.store(true); }

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void Say(const std::string& text) { fprintf(stderr, "stackstream attach: %s\n", text.c_str()); }

void CatchStopSignals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnStop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int RunHere(const AttachCommand& command) {
  auto files = std::make_shared<ElfFileCache>();
  pipeline::Symbolizer::Options options;
  options.system_library_lines = command.system_library_lines;
  options.files = files;
  pipeline::Symbolizer symbolizer(options);
  AttachSession session(command.pid, command.vars, files, &symbolizer);
  std::string error;
  if (!session.Start(&error)) {
    Say("error: " + error);
    return 1;
  }
  Say(AttachStartedText(session));
  const int64_t start = MonoNs();
  int64_t now = start;
  std::vector<pollfd> fds;
  for (;;) {
    // Wake when a ring is half full, else every kPollMs.
    fds.clear();
    for (int fd : session.event_fds()) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), kPollMs) > 0) {
      for (const pollfd& p : fds) {
        // A thread exited (its event hangs up): close its event now, or
        // poll would keep returning at once.
        if (p.revents & (POLLHUP | POLLERR)) session.RescanThreadsSoon();
      }
    }
    now = MonoNs();
    if (g_stop.load() || session.TargetGone() ||
        (command.duration_ms > 0 && now - start >= command.duration_ms * 1000000LL)) {
      break;
    }
    session.Poll(now, false);
  }
  const bool gone = session.TargetGone();
  session.Poll(now, true);
  session.Finish(MonoNs() + kFinishMs * 1000000LL);
  Say(AttachFinishedText(session, gone, static_cast<double>(now - start) / 1e9));
  return 0;
}

// -1: no daemon answers; otherwise the exit status.
int RunInDaemon(const AttachCommand& command) {
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(command.agent_socket, &sa, &len)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    close(fd);
    return -1;
  }
  AttachRequest request;
  request.pid = command.pid;
  request.duration_ms = command.duration_ms;
  request.vars = command.vars;
  std::string buf = EncodeAttachRequest(request);
  if (buf.empty() || send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(buf.size())) {
    close(fd);
    Say("error: the node daemon at " + command.agent_socket + " did not take the request");
    return 1;
  }
  bool stop_sent = false;
  for (;;) {
    if (g_stop.load() && !stop_sent) {
      capture::MessageHeader h = AttachHeader(kAttachStop, sizeof(capture::MessageHeader));
      send(fd, &h, sizeof h, MSG_NOSIGNAL);
      stop_sent = true;
    }
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    alignas(8) char in[capture::kMaxMessageBytes];
    ssize_t n = recv(fd, in, sizeof in, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      Say("error: the node daemon closed the connection");
      return 1;
    }
    AttachState state;
    std::string text;
    if (!DecodeAttachStatus(in, static_cast<size_t>(n), &state, &text)) continue;
    if (state == kAttachFailed) {
      Say("error: " + text);
      close(fd);
      return 1;
    }
    Say(text);
    if (state == kAttachFinished || (state == kAttachStarted && command.detach)) {
      close(fd);
      return 0;
    }
  }
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string AttachStartedText(const AttachSession& session) {
  const Config& c = session.config();
  std::string text = "profiling " + session.name() + " (" +
                     Plural(session.threads_seen(), "thread", "threads") + ", " +
                     std::to_string(c.hz) + " Hz, service " + c.service + ")";
  if (session.threads_failed() > 0) {
    text += "; " + Plural(session.threads_failed(), "thread", "threads") + " could not be opened";
  }
  return text;
}

std::string AttachFinishedText(const AttachSession& session, bool target_exited,
                               double seconds) {
  char secs[32];
  snprintf(secs, sizeof secs, "%.1f s", seconds);
  std::string text;
  if (target_exited) text = "pid " + std::to_string(session.pid()) + " exited after " + secs + "; ";
  text += Plural(session.samples(), "sample", "samples") + " from " +
          Plural(session.threads_seen(), "thread", "threads") + " in " + secs;
  text += " (" + std::to_string(session.lost()) + " lost, " +
          std::to_string(session.not_unwound()) + " not unwound, " +
          std::to_string(session.threads_failed()) + " threads not sampled)";
  const Config& c = session.config();
  if (!c.output.empty()) text += "; profile written to " + c.output;
  if (c.collector_set || c.output.empty()) {
    std::string to;
    for (const std::string& a : c.collectors) to += (to.empty() ? "" : ",") + a;
    text += "; summaries sent to " + to;
  }
  return text;
}

int RunAttachCommand(const AttachCommand& command) {
  CatchStopSignals();
  if (command.pid <= 0) {
    Say("error: --attach needs a process id (got " + std::to_string(command.pid) + ")");
    return 2;
  }
  if (command.use_daemon && !command.agent_socket.empty()) {
    int status = RunInDaemon(command);
    if (status >= 0) return status;
  }
  if (command.detach) {
    Say("error: --detach needs a node daemon (none answers at " + command.agent_socket + ")");
    return 2;
  }
  return RunHere(command);
}

}  // namespace agent
}  // namespace stackstream
