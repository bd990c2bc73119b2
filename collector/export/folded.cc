#include "export/folded.h"

#include <map>

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

std::string SanitizeFoldedFrame(const std::string& name) {
  if (name.empty()) return kUnknownFrame;
  std::string out;
  out.reserve(std::min(name.size(), kMaxFoldedFrameBytes));
  for (char c : name) {
    if (out.size() >= kMaxFoldedFrameBytes) break;
    unsigned char u = static_cast<unsigned char>(c);
    if (c == ';') {
      out.push_back(':');
    } else if (u < 0x20 || u == 0x7f) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string ExportFolded(const Profile& profile) {
  std::map<std::string, int64_t> lines;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0 || sample.frames.empty()) continue;
    std::vector<std::string> names = RootFirstNames(profile, sample);
    for (std::string& n : names) n = SanitizeFoldedFrame(n);
    // Drop root-side frames until the line fits.
    size_t bytes = 0;
    for (const auto& n : names) bytes += n.size() + 1;
    size_t first = 0;
    bool cut = false;
    while (bytes > kMaxFoldedLineBytes && first + 1 < names.size()) {
      bytes -= names[first].size() + 1;
      ++first;
      cut = true;
    }
    std::string stack;
    if (cut && names[first] != kTruncatedFrame) {
      stack = kTruncatedFrame;
      stack.push_back(';');
    }
    for (size_t i = first; i < names.size(); ++i) {
      if (i > first) stack.push_back(';');
      stack += names[i];
    }
    lines[stack] += sample.count;
  }
  std::string out;
  for (const auto& [stack, count] : lines) {
    out += stack;
    out.push_back(' ');
    out += std::to_string(count);
    out.push_back('\n');
  }
  return out;
}

}  // namespace exporter
}  // namespace stackstream
