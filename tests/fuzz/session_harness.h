// SessionHarness: one stackstream-agent ClientSession fed through a real
// SOCK_SEQPACKET pair with real sealed memfds, exactly as a host feeds it,
// for the agent's fuzz targets. The session's pipeline is a sink that only
// counts (no gRPC, no files): what is under test is the parsing of what a
// host sends, the ring reader and the unwinder over the host's copies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {
class ClientSession;
struct SharedState;
}  // namespace agent

namespace fuzz {

class SessionHarness {
 public:
  SessionHarness();
  ~SessionHarness();

  // A memfd holding "bytes", sealed against shrinking when "seal" (the
  // agent refuses unsealed ones). The caller owns it.
  static int Memfd(const std::string& bytes, bool seal);
  // A message header for "body_bytes" after it.
  static capture::MessageHeader Header(uint32_t type, size_t total_bytes);
  // A valid hello (the agent's own pid and executable) and a control block.
  static std::string Hello(uint32_t flags = 0);
  static std::string ControlBlock();
  // Module messages of this process's own loaded modules (generation "g"),
  // then a modules-end of "g".
  static std::vector<std::string> OwnModules(uint64_t generation);
  static std::string ModulesEnd(uint64_t generation, bool full);

  // Sends one message (and "fds", which stay the caller's) and lets the
  // session read it. False once the session dropped the host.
  bool Send(const std::string& message, const std::vector<int>& fds = {});
  // A pass of the session (drain, windows).
  void Poll(bool final);
  // The host hangs up: the session drains and finishes. Returns its samples.
  int64_t Close();

  int64_t samples_seen() const;

 private:
  int host_fd_ = -1;
  std::unique_ptr<agent::SharedState> shared_;
  std::unique_ptr<agent::ClientSession> session_;
};

}  // namespace fuzz
}  // namespace stackstream
