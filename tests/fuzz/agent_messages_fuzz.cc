// Fuzz target: the socket messages a host sends stackstream-agent (hello,
// rings, modules, modules-end, flush, goodbye) with the memfds they carry,
// through a real ClientSession (session_harness.h). Whatever arrives, the
// agent must not crash, must finish the session when the host hangs up,
// and must hand the pipeline only well-formed samples.
#include <fuzzer/FuzzedDataProvider.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "capture/capture_format.h"
#include "session_harness.h"

namespace {

using stackstream::fuzz::SessionHarness;
namespace capture = stackstream::capture;

std::string Fuzzed(FuzzedDataProvider* in, uint32_t type, size_t min_body) {
  std::string body = in->ConsumeRandomLengthString(capture::kMaxMessageBytes);
  if (body.size() < min_body) body.resize(min_body, '\0');
  const size_t total = sizeof(capture::MessageHeader) + body.size();
  capture::MessageHeader h = SessionHarness::Header(type, in->ConsumeBool() ? total : in->ConsumeIntegral<uint32_t>());
  return std::string(reinterpret_cast<const char*>(&h), sizeof h) + body;
}

// A ring memfd: a valid header (sizes from the input) or raw input bytes.
std::string RingBytes(FuzzedDataProvider* in, uint64_t* bytes) {
  std::string mem;
  if (in->ConsumeBool()) {
    capture::RingHeader h;
    memset(static_cast<void*>(&h), 0, sizeof h);
    h.magic = capture::kRingMagic;
    h.version = capture::kFormatVersion;
    h.header_bytes = capture::kRingHeaderBytes;
    h.slots = 1u << in->ConsumeIntegralInRange(0, 3);
    h.stack_capacity = in->ConsumeIntegralInRange<uint32_t>(0, 256);
    h.slot_bytes = static_cast<uint32_t>((sizeof(capture::SampleRecord) + h.stack_capacity + 63) & ~size_t{63});
    if (in->ConsumeBool()) h.slot_bytes = in->ConsumeIntegral<uint32_t>();
    h.head.store(in->ConsumeIntegralInRange<uint64_t>(0, 9));
    mem.assign(reinterpret_cast<const char*>(&h), sizeof h);
    mem.resize(capture::RingBytes(h.slots, h.slot_bytes & 0xffff), '\0');
    std::string records = in->ConsumeRandomLengthString(4096);
    memcpy(&mem[capture::kRingHeaderBytes], records.data(),
           std::min(records.size(), mem.size() - capture::kRingHeaderBytes));
  } else {
    mem = in->ConsumeRandomLengthString(8192);
  }
  *bytes = in->ConsumeBool() ? mem.size() : in->ConsumeIntegral<uint64_t>();
  return mem;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  SessionHarness h;
  std::vector<int> fds;
  auto memfd = [&](const std::string& bytes, bool seal) {
    fds.push_back(SessionHarness::Memfd(bytes, seal));
    return fds.back();
  };
  bool alive = true;
  if (in.ConsumeBool()) {  // most hosts start well
    std::string control = SessionHarness::ControlBlock();
    if (in.ConsumeBool()) control = in.ConsumeRandomLengthString(sizeof(capture::ControlBlock) + 8);
    alive = h.Send(SessionHarness::Hello(in.ConsumeIntegralInRange<uint32_t>(0, 3)),
                   {memfd(control, in.ConsumeBool()), STDERR_FILENO});
  }
  const std::vector<std::string> own = SessionHarness::OwnModules(1);
  const int messages = in.ConsumeIntegralInRange(0, 40);
  for (int i = 0; i < messages && alive && in.remaining_bytes() > 0; ++i) {
    switch (in.ConsumeIntegralInRange(0, 7)) {
      case 0:  // anything at all
        alive = h.Send(in.ConsumeRandomLengthString(capture::kMaxMessageBytes + 16));
        break;
      case 1: {  // a ring
        capture::RingMessage m;
        memset(&m, 0, sizeof m);
        m.header = SessionHarness::Header(capture::kRing, sizeof m);
        m.ring_id = in.ConsumeIntegralInRange<uint32_t>(0, 3);
        std::string mem = RingBytes(&in, &m.bytes);
        alive = h.Send(std::string(reinterpret_cast<const char*>(&m), sizeof m),
                       {memfd(mem, in.ConsumeBool())});
        break;
      }
      case 2: {  // one of our own modules, perhaps with fields changed
        if (own.empty()) break;
        std::string msg = own[in.ConsumeIntegralInRange<size_t>(0, own.size() - 1)];
        const int edits = in.ConsumeIntegralInRange(0, 4);
        for (int e = 0; e < edits; ++e) {
          size_t at = in.ConsumeIntegralInRange<size_t>(0, msg.size() - 1);
          msg[at] = static_cast<char>(in.ConsumeIntegral<uint8_t>());
        }
        alive = h.Send(msg);
        break;
      }
      case 3:
        alive = h.Send(SessionHarness::ModulesEnd(in.ConsumeIntegralInRange<uint64_t>(0, 3),
                                                  in.ConsumeBool()));
        break;
      case 4:
        alive = h.Send(Fuzzed(&in, in.ConsumeIntegralInRange<uint32_t>(1, 9), 0));
        break;
      case 5: {
        capture::SimpleMessage m;
        m.header = SessionHarness::Header(in.ConsumeBool() ? capture::kFlush : capture::kGoodbye,
                                          sizeof m);
        alive = h.Send(std::string(reinterpret_cast<const char*>(&m), sizeof m));
        break;
      }
      case 6:  // a valid message with stray descriptors
        alive = h.Send(SessionHarness::ModulesEnd(1, true),
                       {memfd(in.ConsumeRandomLengthString(64), in.ConsumeBool()), STDIN_FILENO});
        break;
      default:
        h.Poll(false);
        break;
    }
  }
  h.Close();
  for (int fd : fds) close(fd);
  return 0;
}
