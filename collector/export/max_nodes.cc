#include "export/max_nodes.h"

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "export/call_tree.h"
#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

namespace {

// Call-tree nodes by (parent, name), with totals; node 0 is the root.
class NodeIndex {
 public:
  NodeIndex() : totals_(1, 0) {}

  uint32_t Child(uint32_t parent, const std::string& name) {
    auto [it, added] = index_.try_emplace(ChildKey{parent, name}, static_cast<uint32_t>(totals_.size()));
    if (added) totals_.push_back(0);
    return it->second;
  }
  uint32_t Find(uint32_t parent, const std::string& name) const {
    return index_.at(ChildKey{parent, name});
  }
  void Add(uint32_t node, int64_t count) { totals_[node] += count; }
  int64_t total(uint32_t node) const { return totals_[node]; }
  const std::vector<int64_t>& totals() const { return totals_; }

 private:
  std::unordered_map<ChildKey, uint32_t, ChildKeyHash> index_;
  std::vector<int64_t> totals_;
};

}  // namespace

Profile TruncateToMaxNodes(const Profile& profile, int64_t max_nodes) {
  if (max_nodes <= 0) return profile;
  NodeIndex index;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0) continue;
    uint32_t node = 0;
    for (const std::string& name : RootFirstNames(profile, sample)) {
      node = index.Child(node, name);
      index.Add(node, sample.count);
    }
  }
  std::vector<int64_t> totals(index.totals().begin() + 1, index.totals().end());
  if (static_cast<int64_t>(totals.size()) <= max_nodes) return profile;
  std::nth_element(totals.begin(), totals.begin() + (max_nodes - 1), totals.end(),
                   std::greater<int64_t>());
  const int64_t min_total = totals[max_nodes - 1];

  ProfileBuilder builder;
  Profile* out = builder.mutable_profile();
  out->mode = profile.mode;
  out->period_nanos = profile.period_nanos;
  out->start_unix_nanos = profile.start_unix_nanos;
  out->end_unix_nanos = profile.end_unix_nanos;
  out->comments = profile.comments;
  Frame other_frame;
  other_frame.function = kOtherFrame;
  const uint32_t other = builder.InternFrame(other_frame);
  std::vector<uint32_t> frames;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0) continue;
    const std::vector<std::string> names = RootFirstNames(profile, sample);
    // names[i] is the synthetic "[truncated]" root when i < offset.
    const size_t offset = sample.truncated ? 1 : 0;
    size_t keep = names.size();
    uint32_t node = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      node = index.Find(node, names[i]);
      if (index.total(node) < min_total) {
        keep = i;
        break;
      }
    }
    frames.clear();  // leaf first
    if (keep < names.size()) frames.push_back(other);
    for (size_t i = keep; i-- > offset;) {
      const size_t f = sample.frames.size() - 1 - (i - offset);
      const uint32_t src = sample.frames[f];
      if (src < profile.frames.size()) {
        frames.push_back(builder.InternFrame(profile.frames[src]));
      } else {
        Frame unknown;
        unknown.function = kUnknownFrame;
        frames.push_back(builder.InternFrame(unknown));
      }
    }
    builder.AddSample(frames, sample.count, sample.truncated && keep > 0);
  }
  return builder.Release();
}

}  // namespace exporter
}  // namespace stackstream
