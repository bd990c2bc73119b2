// `stackstream-agent --attach PID` (what `stackstream attach` runs): profile
// a running process from outside. When a node daemon answers at
// STACKSTREAM_AGENT_SOCKET (or the default path) the attach runs inside the
// daemon, so it can outlive this command (--detach returns once it
// started); otherwise it runs in this process. It ends after --duration,
// on Ctrl-C / SIGTERM, or when the target exits (reported, not an error),
// and flushes the last window before returning.
//
// Exit status: 0 when the attach ran (also when the target exited during
// it), 1 when it could not start (the message says why and what to change),
// 2 for bad arguments.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace stackstream {
namespace agent {

struct AttachCommand {
  pid_t pid = 0;
  int64_t duration_ms = 0;                  // 0: until Ctrl-C or the target exits
  std::map<std::string, std::string> vars;  // STACKSTREAM_* settings for the pipeline
  std::string agent_socket;                 // the node daemon's socket
  bool use_daemon = true;                   // false: --no-daemon
  bool detach = false;                      // return once the daemon started it
  bool system_library_lines = false;
};

int RunAttachCommand(const AttachCommand& command);

class AttachSession;
// The lines printed when an attach started and when it ended (the same
// whether it ran here or in the node daemon).
std::string AttachStartedText(const AttachSession& session);
std::string AttachFinishedText(const AttachSession& session, bool target_exited,
                               double seconds);

}  // namespace agent
}  // namespace stackstream
