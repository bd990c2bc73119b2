#include "attach/attach_protocol.h"

#include <string.h>

namespace stackstream {
namespace agent {

std::string EncodeAttachRequest(const AttachRequest& request) {
  std::string vars;
  for (const auto& [k, v] : request.vars) vars += k + "=" + v + '\0';
  AttachRequestMessage m;
  memset(&m, 0, sizeof m);
  m.pid = request.pid;
  m.vars_bytes = static_cast<uint32_t>(vars.size());
  m.duration_ms = request.duration_ms;
  const size_t size = sizeof m + vars.size();
  if (size > capture::kMaxMessageBytes) return std::string();
  m.header = AttachHeader(kAttachRequest, static_cast<uint32_t>(size));
  std::string buf(reinterpret_cast<const char*>(&m), sizeof m);
  buf += vars;
  return buf;
}

bool DecodeAttachRequest(const char* data, size_t size, AttachRequest* out, std::string* error) {
  AttachRequestMessage m;
  auto fail = [error](const std::string& why) {
    *error = "malformed attach request: " + why;
    return false;
  };
  if (size < sizeof m) return fail("shorter than its header");
  if (size > capture::kMaxMessageBytes) return fail("longer than a message may be");
  memcpy(&m, data, sizeof m);
  if (m.header.magic != capture::kMessageMagic || m.header.type != kAttachRequest) {
    return fail("not an attach request");
  }
  if (m.header.version != capture::kFormatVersion) {
    return fail("format version " + std::to_string(m.header.version) + ", this agent speaks " +
                std::to_string(capture::kFormatVersion));
  }
  if (m.header.size != size || sizeof m + static_cast<size_t>(m.vars_bytes) != size) {
    return fail("its sizes disagree with the bytes sent");
  }
  if (m.duration_ms < 0 || m.duration_ms > kMaxAttachDurationMs) {
    return fail("duration " + std::to_string(m.duration_ms) + " ms is out of range (0 to " +
                std::to_string(kMaxAttachDurationMs) + ")");
  }
  if (m.pid <= 0) return fail("pid " + std::to_string(m.pid));
  if (m.vars_bytes > 0 && data[size - 1] != '\0') return fail("settings not NUL-terminated");
  out->pid = m.pid;
  out->duration_ms = m.duration_ms;
  out->vars.clear();
  for (size_t i = sizeof m; i < size;) {
    const char* kv = data + i;
    const size_t len = strlen(kv);  // the last byte is a NUL
    i += len + 1;
    const char* eq = static_cast<const char*>(memchr(kv, '=', len));
    if (eq == nullptr) return fail("a setting without '='");
    std::string key(kv, static_cast<size_t>(eq - kv));
    if (key.compare(0, 12, "STACKSTREAM_") != 0) {
      return fail("setting \"" + key.substr(0, 64) + "\" is not a STACKSTREAM_* variable");
    }
    if (!out->vars.emplace(key, std::string(eq + 1, kv + len)).second) {
      return fail("setting " + key + " given twice");
    }
  }
  return true;
}

std::string EncodeAttachStatus(AttachState state, const std::string& text) {
  std::string body = text.substr(0, capture::kMaxMessageBytes - sizeof(AttachStatusMessage));
  AttachStatusMessage m;
  memset(&m, 0, sizeof m);
  m.header = AttachHeader(kAttachStatus, static_cast<uint32_t>(sizeof m + body.size()));
  m.state = state;
  m.text_bytes = static_cast<uint32_t>(body.size());
  std::string buf(reinterpret_cast<const char*>(&m), sizeof m);
  buf += body;
  return buf;
}

bool DecodeAttachStatus(const char* data, size_t size, AttachState* state, std::string* text) {
  AttachStatusMessage m;
  if (size < sizeof m) return false;
  memcpy(&m, data, sizeof m);
  if (m.header.magic != capture::kMessageMagic || m.header.type != kAttachStatus ||
      m.header.version != capture::kFormatVersion || m.header.size != size || sizeof m + static_cast<size_t>(m.text_bytes) != size) {
    return false;
  }
  if (m.state != kAttachStarted && m.state != kAttachFailed && m.state != kAttachFinished) {
    return false;
  }
  *state = static_cast<AttachState>(m.state);
  text->assign(data + sizeof m, m.text_bytes);
  return true;
}

}  // namespace agent
}  // namespace stackstream
