// Writes the golden summaries of tests/golden/ (run once by hand when a NEW
// golden file is added; existing files are never rewritten):
//   make_golden tests/golden
#include <fstream>
#include <iostream>
#include <string>

#include "test_summaries.h"

namespace {
void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}
void AppendVarintField(std::string* out, int field, uint64_t v) {
  uint64_t key = static_cast<uint64_t>(field) << 3;
  for (uint64_t x : {key, v}) {
    while (x >= 0x80) {
      out->push_back(static_cast<char>((x & 0x7f) | 0x80));
      x >>= 7;
    }
    out->push_back(static_cast<char>(x));
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_golden DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  const std::string basic = stackstream::testing::MakeValidSummary().SerializeAsString();
  Write(dir + "/summary_v1_basic.binpb", basic);
  std::string future = basic;
  AppendVarintField(&future, 100, 12345);
  // field 101, wire type 2, "hello"
  future.push_back(static_cast<char>(((101 << 3 | 2) & 0x7f) | 0x80));
  future.push_back(static_cast<char>((101 << 3 | 2) >> 7));
  future.push_back(5);
  future += "hello";
  Write(dir + "/summary_v1_future_fields.binpb", future);
  return 0;
}
