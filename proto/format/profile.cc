#include "profile.h"

#include <algorithm>
#include <functional>

namespace stackstream {

bool IsHeapSampleType(const std::string& mode) {
  for (const char* t : kHeapSampleTypes) {
    if (mode == t) return true;
  }
  return false;
}

bool IsGaugeSampleType(const std::string& mode) {
  return mode == "inuse_objects" || mode == "inuse_space";
}

const char* SampleTypeUnit(const std::string& mode) {
  if (mode == "alloc_space" || mode == "inuse_space") return "bytes";
  if (mode == "alloc_objects" || mode == "inuse_objects") return "count";
  return "nanoseconds";
}

bool IsSampleLabelKey(const std::string& key) {
  return key == "span_id" || key == "trace_id" || key == "span_name";
}

namespace {
inline void HashCombine(size_t* seed, size_t v) {
  *seed ^= v + 0x9e3779b97f4a7c15ULL + (*seed << 6) + (*seed >> 2);
}
}  // namespace

size_t FrameHash::operator()(const Frame& f) const {
  size_t h = std::hash<std::string>()(f.function);
  HashCombine(&h, std::hash<std::string>()(f.file));
  HashCombine(&h, std::hash<int64_t>()(f.line));
  HashCombine(&h, std::hash<std::string>()(f.module));
  HashCombine(&h, std::hash<std::string>()(f.build_id));
  HashCombine(&h, f.inlined ? 1 : 0);
  return h;
}

int64_t Profile::TotalCount() const {
  int64_t total = 0;
  for (const auto& s : samples) total += s.count;
  return total;
}

template <typename F>
uint32_t ProfileBuilder::Intern(F&& frame) {
  const size_t h = FrameHash()(frame);
  for (auto [it, end] = frame_index_.equal_range(h); it != end; ++it) {
    if (profile_.frames[it->second] == frame) return it->second;
  }
  const uint32_t idx = static_cast<uint32_t>(profile_.frames.size());
  profile_.frames.push_back(std::forward<F>(frame));
  frame_index_.emplace(h, idx);
  return idx;
}

uint32_t ProfileBuilder::InternFrame(const Frame& frame) { return Intern(frame); }
uint32_t ProfileBuilder::InternFrame(Frame&& frame) { return Intern(std::move(frame)); }

void ProfileBuilder::AddSample(const uint32_t* frames, size_t num_frames, int64_t count,
                               bool truncated, const SampleLabels& labels) {
  if (count <= 0) return;
  uint32_t label_set = 0;
  if (!labels.empty()) {
    label_set = label_sets_.emplace(labels, static_cast<uint32_t>(label_sets_.size() + 1))
                    .first->second;
  }
  size_t h = num_frames;
  for (size_t i = 0; i < num_frames; ++i) HashCombine(&h, frames[i]);
  HashCombine(&h, label_set);
  for (auto [it, end] = sample_index_.equal_range(h); it != end; ++it) {
    ProfileSample& s = profile_.samples[it->second.first];
    if (it->second.second != label_set || s.frames.size() != num_frames ||
        !std::equal(frames, frames + num_frames, s.frames.begin())) {
      continue;
    }
    s.count += count;
    s.truncated = s.truncated || truncated;
    return;
  }
  sample_index_.emplace(h,
                        std::make_pair(static_cast<uint32_t>(profile_.samples.size()), label_set));
  ProfileSample s;
  s.frames.assign(frames, frames + num_frames);
  s.count = count;
  s.truncated = truncated;
  s.labels = labels;
  profile_.samples.push_back(std::move(s));
}

void ProfileBuilder::Merge(const Profile& other) {
  if (profile_.samples.empty() && profile_.frames.empty()) {
    profile_.mode = other.mode;
    profile_.period_nanos = other.period_nanos;
  }
  if (other.start_unix_nanos != 0 &&
      (profile_.start_unix_nanos == 0 || other.start_unix_nanos < profile_.start_unix_nanos)) {
    profile_.start_unix_nanos = other.start_unix_nanos;
  }
  if (other.end_unix_nanos > profile_.end_unix_nanos) profile_.end_unix_nanos = other.end_unix_nanos;
  std::vector<uint32_t> remap(other.frames.size());
  for (size_t i = 0; i < other.frames.size(); ++i) remap[i] = InternFrame(other.frames[i]);
  std::vector<uint32_t> stack;
  for (const auto& s : other.samples) {
    stack.clear();
    for (uint32_t f : s.frames) stack.push_back(remap[f]);
    AddSample(stack, s.count, s.truncated, s.labels);
  }
}

Profile ProfileBuilder::Release() {
  Profile out = std::move(profile_);
  profile_ = Profile();
  frame_index_.clear();
  sample_index_.clear();
  label_sets_.clear();
  return out;
}

}  // namespace stackstream
