#include "profile.h"

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

size_t ProfileBuilder::StackKeyHash::operator()(const std::vector<uint32_t>& v) const {
  size_t h = v.size();
  for (uint32_t x : v) HashCombine(&h, x);
  return h;
}

int64_t Profile::TotalCount() const {
  int64_t total = 0;
  for (const auto& s : samples) total += s.count;
  return total;
}

uint32_t ProfileBuilder::InternFrame(const Frame& frame) {
  auto it = frame_index_.find(frame);
  if (it != frame_index_.end()) return it->second;
  uint32_t idx = static_cast<uint32_t>(profile_.frames.size());
  profile_.frames.push_back(frame);
  frame_index_.emplace(frame, idx);
  return idx;
}

void ProfileBuilder::AddSample(const std::vector<uint32_t>& frames, int64_t count,
                               bool truncated, const SampleLabels& labels) {
  if (count <= 0) return;
  key_ = frames;
  if (!labels.empty()) {
    // A marker no frame index reaches, then the label set's id.
    auto ls = label_sets_.emplace(labels, static_cast<uint32_t>(label_sets_.size())).first;
    key_.push_back(0xffffffffu);
    key_.push_back(ls->second);
  }
  auto it = stack_index_.find(key_);
  if (it != stack_index_.end()) {
    ProfileSample& s = profile_.samples[it->second];
    s.count += count;
    s.truncated = s.truncated || truncated;
    return;
  }
  stack_index_.emplace(key_, static_cast<uint32_t>(profile_.samples.size()));
  ProfileSample s;
  s.frames = frames;
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
  stack_index_.clear();
  label_sets_.clear();
  return out;
}

}  // namespace stackstream
