// Fuzz target: the first message a client sends to the node daemon's socket
// to attach to a process (attach_protocol.h), as the daemon decodes it, and
// the status messages the daemon sends back as the client decodes them. A
// decoded request holds a pid > 0, a duration in range and only STACKSTREAM_*
// settings, and encodes to a message that decodes to the same request; a
// refusal has a message; a decoded status re-encodes to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "attach/attach_protocol.h"
#include "fuzz_check.h"

using namespace stackstream::agent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  AttachRequest request;
  std::string error;
  if (DecodeAttachRequest(bytes, size, &request, &error)) {
    FUZZ_CHECK(request.pid > 0, "pid %d", static_cast<int>(request.pid));
    FUZZ_CHECK(request.duration_ms >= 0 && request.duration_ms <= kMaxAttachDurationMs, "%lld",
               static_cast<long long>(request.duration_ms));
    size_t vars_bytes = 0;
    for (const auto& [k, v] : request.vars) {
      FUZZ_CHECK(k.compare(0, 12, "STACKSTREAM_") == 0, "key %s", k.c_str());
      FUZZ_CHECK(k.find('=') == std::string::npos && k.find('\0') == std::string::npos &&
                     v.find('\0') == std::string::npos,
                 "key or value holds '=' or NUL");
      vars_bytes += k.size() + v.size() + 2;
    }
    FUZZ_CHECK(vars_bytes + sizeof(AttachRequestMessage) == size, "%zu setting bytes of %zu",
               vars_bytes, size);
    std::string again = EncodeAttachRequest(request);
    FUZZ_CHECK(again.size() == size, "re-encoded %zu bytes, got %zu", again.size(), size);
    AttachRequest back;
    std::string error2;
    FUZZ_CHECK(DecodeAttachRequest(again.data(), again.size(), &back, &error2), "%s",
               error2.c_str());
    FUZZ_CHECK(back.pid == request.pid && back.duration_ms == request.duration_ms &&
                   back.vars == request.vars,
               "round trip changed the request");
  } else {
    FUZZ_CHECK(error.compare(0, 26, "malformed attach request: ") == 0 && error.size() > 26,
               "refusal without a reason: \"%s\"", error.c_str());
  }
  AttachState state;
  std::string text;
  if (DecodeAttachStatus(bytes, size, &state, &text)) {
    FUZZ_CHECK(EncodeAttachStatus(state, text) == std::string(bytes, size),
               "status does not re-encode to its bytes");
  }
  return 0;
}
