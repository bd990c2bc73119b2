// Varint: LEB128 unsigned integers, used for the storage engine's compact
// blobs (stack frame-id lists, label sets). Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>

namespace stackstream {
namespace collector {

inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads one varint at "*pos", advancing it. False on a truncated input.
inline bool GetVarint(const std::string& in, size_t* pos, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && *pos < in.size(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(in[(*pos)++]);
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace collector
}  // namespace stackstream
