// AgentServer: stackstream-agent's main loop. It accepts host connections on
// a Unix SOCK_SEQPACKET socket, drives one ClientSession per host process
// (reading messages, draining rings every ~20 ms, closing windows), and
// finishes sessions whose host is gone on threads of their own, so that a
// slow collector never holds up the others.
//
// Two ways to run (see main.cc):
//   node daemon   --listen unix:PATH (or @NAME): runs until SIGTERM/SIGINT,
//                 then flushes every session (hosts reconnect to the next
//                 daemon and lose nothing that was flushed);
//   private helper --helper --listen-fd N: started by the first profiled
//                 process of a tree; exits once every host has gone and its
//                 data is delivered (or given up on), or when no host came.
//
// Thread-safety: Run() on one thread; nothing else is public.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stackstream {
namespace agent {

struct ServerOptions {
  int listen_fd = -1;          // a bound, listening socket
  bool helper = false;
  std::vector<std::string> default_collectors;
  bool system_library_lines = false;
  int64_t finish_deadline_ms = 5000;   // delivery after a host is gone
  int64_t helper_idle_exit_ms = 2000;  // helper: no host for this long -> exit
};

// Runs until stopped (see above). Returns the process exit status.
int RunAgentServer(const ServerOptions& options);

// Binds and listens on "address" ("unix:PATH", "PATH" or "@NAME"). A stale
// socket file nobody answers on is replaced; the file is made connectable by
// every user (mode 0666). Returns the fd, or -1 with "*error" set.
int ListenOn(const std::string& address, std::string* error);

}  // namespace agent
}  // namespace stackstream
