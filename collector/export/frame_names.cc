#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

const std::string& FrameName(const Frame& frame) {
  static const std::string* const kUnknown = new std::string(kUnknownFrame);
  return frame.function.empty() ? *kUnknown : frame.function;
}

std::vector<std::string> RootFirstNames(const Profile& profile, const ProfileSample& sample) {
  std::vector<std::string> names;
  names.reserve(sample.frames.size() + 1);
  if (sample.truncated) names.emplace_back(kTruncatedFrame);
  for (auto it = sample.frames.rbegin(); it != sample.frames.rend(); ++it) {
    if (*it < profile.frames.size()) {
      names.push_back(FrameName(profile.frames[*it]));
    } else {
      names.emplace_back(kUnknownFrame);
    }
  }
  return names;
}

}  // namespace exporter
}  // namespace stackstream
