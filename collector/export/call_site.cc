#include "export/call_site.h"

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

Profile SelectCallSite(const Profile& profile, const std::vector<std::string>& call_site) {
  if (call_site.empty()) return profile;
  Profile out;
  out.mode = profile.mode;
  out.period_nanos = profile.period_nanos;
  out.start_unix_nanos = profile.start_unix_nanos;
  out.end_unix_nanos = profile.end_unix_nanos;
  out.comments = profile.comments;
  out.frames = profile.frames;
  for (const ProfileSample& sample : profile.samples) {
    const std::vector<std::string> names = RootFirstNames(profile, sample);
    if (names.size() < call_site.size()) continue;
    bool match = true;
    for (size_t i = 0; i < call_site.size() && match; ++i) match = names[i] == call_site[i];
    if (match) out.samples.push_back(sample);
  }
  return out;
}

}  // namespace exporter
}  // namespace stackstream
