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

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

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

// An attach request, decoded. The encoder and decoder below are the only
// code that knows the wire layout.
struct AttachRequest {
  pid_t pid = 0;
  int64_t duration_ms = 0;  // 0: until the target exits or a stop
  std::map<std::string, std::string> vars;  // STACKSTREAM_* settings
};

// The longest attach a request may ask for (a year): durations are turned
// into monotonic-clock deadlines in nanoseconds.
constexpr int64_t kMaxAttachDurationMs = int64_t{365} * 24 * 3600 * 1000;

// The kAttachRequest message for "request"; empty when it would not fit in
// one message (capture::kMaxMessageBytes).
std::string EncodeAttachRequest(const AttachRequest& request);

// Decodes "size" bytes a client sent (untrusted). False with "*error" (one
// line for the client) when they are not a well-formed request: short or
// oversized, header that disagrees with the size, another version, a
// duration below 0 or over kMaxAttachDurationMs, settings not NUL-terminated,
// not KEY=VALUE, a key other than STACKSTREAM_*, or a key given twice.
bool DecodeAttachRequest(const char* data, size_t size, AttachRequest* out, std::string* error);

// The kAttachStatus message, and its decoder (false: not a status message).
std::string EncodeAttachStatus(AttachState state, const std::string& text);
bool DecodeAttachStatus(const char* data, size_t size, AttachState* state, std::string* text);

}  // namespace agent
}  // namespace stackstream
