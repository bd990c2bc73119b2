// AgentLink: the host's connection to stackstream-agent, a Unix
// SOCK_SEQPACKET socket carrying the messages of capture_format.h (and the
// memfds, with SCM_RIGHTS).
//
// Finding the agent, in order:
//   1. the node daemon at STACKSTREAM_AGENT_SOCKET (a path, or "@name" for an
//      abstract socket; default /run/stackstream/agent.sock), if it answers;
//   2. the private helper of an ancestor process: a helper listens on the
//      abstract socket "@stackstream-helper.<uid>.<pid>.<start time>" of the
//      process that started it, so descendants (forked or exec'd) find it by
//      walking their parent chain, without any variable in the environment;
//   3. otherwise a new private helper for this process tree: this process
//      binds the listening socket, starts `stackstream-agent --helper` (found
//      next to the library: ../bin/stackstream-agent, or the library's own
//      directory; STACKSTREAM_AGENT_BIN overrides) with a double fork (raw
//      clone: no atfork handlers run) and hands it the socket, then connects.
//      The helper is not a child of the host.
//
// Sending never blocks a host thread: sockets are non-blocking; a message
// that does not fit is retried by the caller or dropped and counted.
//
// Thread-safety: all methods take the link's mutex (mu()), except those
// marked otherwise. The fork hooks lock it around fork().
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace stackstream {
namespace agent {

class AgentLink {
 public:
  AgentLink() = default;
  AgentLink(const AgentLink&) = delete;
  AgentLink& operator=(const AgentLink&) = delete;

  // Finds or starts an agent as described above and connects. "daemon_socket"
  // is STACKSTREAM_AGENT_SOCKET (or the default). "may_spawn" allows step 3.
  // Returns false when no agent could be reached or started.
  bool Connect(const std::string& daemon_socket, bool may_spawn);

  // Connects again to the address found by the last Connect (e.g. a forked
  // child, or after the daemon restarted). When that was the node daemon,
  // only the daemon is tried (it is being restarted; no helper replaces it);
  // otherwise (a helper that went away) falls back to Connect's search.
  bool Reconnect(const std::string& daemon_socket, bool may_spawn);

  bool connected() const { return fd_ >= 0; }
  // What Connect found: "daemon PATH", "helper @NAME", "new helper @NAME".
  const std::string& description() const { return description_; }

  // Sends one message ("len" bytes) with up to 3 fds. Returns 0 when sent,
  // EAGAIN when the socket is full (try again later), or another errno when
  // the connection is gone (the link is then disconnected).
  int Send(const void* msg, size_t len, const int* fds, int nfds);

  // Waits up to "timeout_ms" for a message of type "type" from the agent
  // (other messages are discarded). True when it came.
  bool WaitFor(uint32_t type, int timeout_ms);

  // True when the agent closed its end (checked without blocking).
  bool PeerClosed();

  // Closes the connection (e.g. in a forked child: the parent's). No lock.
  void Close();

  // A forked child's new link: reconnect to where the parent's went. No lock
  // (the child is single-threaded then).
  void InheritAddress(const AgentLink& parent) {
    address_ = parent.address_;
    description_ = parent.description_;
  }

  std::mutex& mu() { return mu_; }

 private:
  bool ConnectTo(const std::string& address);
  bool SpawnHelper(std::string* address);

  std::mutex mu_;
  int fd_ = -1;
  std::string address_;      // "@name" or a path
  std::string description_;
};

// The abstract socket name of the helper that process "pid" (started at
// "start_ticks", field 22 of /proc/PID/stat) started: "@stackstream-helper.UID.PID.START".
std::string HelperSocketName(uid_t uid, pid_t pid, uint64_t start_ticks);

// Field 22 (start time) and field 4 (parent pid) of /proc/PID/stat.
bool ReadProcStat(pid_t pid, uint64_t* start_ticks, pid_t* ppid);

}  // namespace agent
}  // namespace stackstream
