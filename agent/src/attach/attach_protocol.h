// The attach requests the node daemon accepts on its socket (next to the
// hosts' capture_format.h messages, same MessageHeader; the type numbers
// from 0x100 on belong to stackstream-agent itself and are never sent by a
// host):
//   kAttachRequest  client -> daemon, the first message of a connection:
//                   AttachRequestMessage + "KEY=VALUE\0" STACKSTREAM_* settings
//   kAttachStatus   daemon -> client: started / failed / finished + a text line
//   kAttachStop     client -> daemon: end the attach now (Ctrl-C)
// The attach runs in the daemon until its duration ends, the target exits
// or a client stops it; a client that goes away does not stop it.
#pragma once

#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

constexpr uint32_t kAttachRequest = 0x100;
constexpr uint32_t kAttachStatus = 0x101;
constexpr uint32_t kAttachStop = 0x102;

struct AttachRequestMessage {
  capture::MessageHeader header;
  int32_t pid;
  uint32_t vars_bytes;   // bytes of "KEY=VALUE\0" strings that follow
  int64_t duration_ms;   // 0: until the target exits or a stop
};

enum AttachState : uint32_t { kAttachStarted = 1, kAttachFailed = 2, kAttachFinished = 3 };

struct AttachStatusMessage {
  capture::MessageHeader header;
  uint32_t state;        // AttachState
  uint32_t text_bytes;   // bytes of text that follow (no NUL)
};

inline capture::MessageHeader AttachHeader(uint32_t type, uint32_t size) {
  capture::MessageHeader h;
  h.magic = capture::kMessageMagic;
  h.type = type;
  h.size = size;
  h.version = capture::kFormatVersion;
  return h;
}

}  // namespace agent
}  // namespace stackstream
