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

void ProfileBuilder::Index::Reserve(size_t n) {
  size_t want = 16;
  while (want < 2 * n) want *= 2;
  if (want <= slots_.size()) return;
  std::vector<Entry> old;
  old.swap(slots_);
  slots_.resize(want);
  size_ = 0;
  for (const Entry& e : old) {
    if (e.index != kEmpty) Insert(e.hash, e.index, e.tag);
  }
}

void ProfileBuilder::Index::Insert(size_t hash, uint32_t index, uint32_t tag) {
  if (2 * (size_ + 1) > slots_.size()) Reserve(size_ + 1);
  size_t i = hash & (slots_.size() - 1);
  while (slots_[i].index != kEmpty) i = (i + 1) & (slots_.size() - 1);
  slots_[i] = Entry{hash, index, tag};
  ++size_;
}

void ProfileBuilder::Reserve(size_t frames, size_t samples) {
  profile_.frames.reserve(profile_.frames.size() + frames);
  profile_.samples.reserve(profile_.samples.size() + samples);
  frame_index_.Reserve(profile_.frames.size() + frames);
  sample_index_.Reserve(profile_.samples.size() + samples);
}

template <typename F>
uint32_t ProfileBuilder::Intern(F&& frame) {
  const size_t h = FrameHash()(frame);
  const Index::Entry* e = frame_index_.Find(
      h, [&](const Index::Entry& entry) { return profile_.frames[entry.index] == frame; });
  if (e != nullptr) return e->index;
  const uint32_t idx = static_cast<uint32_t>(profile_.frames.size());
  profile_.frames.push_back(std::forward<F>(frame));
  frame_index_.Insert(h, idx, 0);
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
  const Index::Entry* e = sample_index_.Find(h, [&](const Index::Entry& e) {
    const ProfileSample& s = profile_.samples[e.index];
    return e.tag == label_set && s.frames.size() == num_frames &&
           std::equal(frames, frames + num_frames, s.frames.begin());
  });
  if (e != nullptr) {
    ProfileSample& s = profile_.samples[e->index];
    s.count += count;
    s.truncated = s.truncated || truncated;
    return;
  }
  sample_index_.Insert(h, static_cast<uint32_t>(profile_.samples.size()), label_set);
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
  frame_index_.Clear();
  sample_index_.Clear();
  label_sets_.clear();
  return out;
}

}  // namespace stackstream
