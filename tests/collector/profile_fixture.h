// Hand-built Profiles for the exporter and HTTP tests.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace testing {

struct Stack {
  std::string folded;  // "root;...;leaf"
  int64_t count;
  bool truncated = false;
};

// Frames get file "<fn>.cc", line 10*depth (1-based from the root), module
// "/usr/bin/app", unless the name is "fn@module".
inline Profile MakeProfile(const std::vector<Stack>& stacks, int64_t period = 10000000) {
  ProfileBuilder b;
  b.mutable_profile()->period_nanos = period;
  for (const Stack& s : stacks) {
    std::vector<std::string> names;
    std::stringstream ss(s.folded);
    std::string item;
    while (std::getline(ss, item, ';')) names.push_back(item);
    std::vector<uint32_t> frames;
    for (size_t depth = names.size(); depth-- > 0;) {  // leaf first
      Frame f;
      std::string name = names[depth];
      size_t at = name.find('@');
      f.module = "/usr/bin/app";
      if (at != std::string::npos) {
        f.module = name.substr(at + 1);
        name = name.substr(0, at);
      }
      f.function = name;
      f.file = name + ".cc";
      f.line = 10 * static_cast<int64_t>(depth + 1);
      frames.push_back(b.InternFrame(f));
    }
    b.AddSample(frames, s.count, s.truncated);
  }
  return b.Release();
}

}  // namespace testing
}  // namespace stackstream
