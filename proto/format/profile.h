// Profile: the in-memory, symbolized, merged form of one or more summaries.
// This is the domain type that query, export and the offline writer share;
// it holds no proto types and nothing that points into a live process.
//
// A Profile is a set of distinct stacks with counts. Frames are interned:
// Profile::frames holds each distinct frame once and a stack is a list of
// indexes into it, LEAF FIRST (as in pprof). Inlined frames are expanded into
// separate frames (marked `inlined`), so a stack reads like a source-level
// call chain.
//
// Not thread-safe; build it on one thread, read it from many.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <string>
#include <unordered_map>
#include <vector>

namespace stackstream {

// Profile types ("modes"). "cpu" and "wall" count samples of a clock; the
// heap sample types (STACKSTREAM_PROFILES=heap) are each a profile type of
// their own, the way Pyroscope stores them:
//   alloc_objects (count), alloc_space (bytes): allocations, summed over time;
//   inuse_objects (count), inuse_space (bytes): gauges, a snapshot of what
//   is live; a range takes the latest snapshot of each process, never a sum.
// "heap" names the four together (pprof export).
constexpr const char* kHeapSampleTypes[4] = {"alloc_objects", "alloc_space", "inuse_objects",
                                            "inuse_space"};
bool IsHeapSampleType(const std::string& mode);
bool IsGaugeSampleType(const std::string& mode);  // inuse_*
const char* SampleTypeUnit(const std::string& mode);  // "count", "bytes" or "nanoseconds"

struct Frame {
  std::string function;  // demangled name, or "module+0x1f00" when unknown
  std::string file;      // source file; empty when unknown
  int64_t line = 0;      // 0 when unknown
  std::string module;    // path of the mapped file; empty when unknown
  std::string build_id;  // GNU build-id, lower-case hex; may be empty
  bool inlined = false;  // inlined into the frame that follows it (its caller)

  bool operator==(const Frame& o) const {
    return line == o.line && inlined == o.inlined && function == o.function && file == o.file &&
           module == o.module && build_id == o.build_id;
  }
};

struct FrameHash {
  size_t operator()(const Frame& f) const;
};

// Per-sample labels (the host thread's labels: span_id, trace_id, ...),
// sorted by key, keys unique. Not series labels: they never make a series.
using SampleLabels = std::vector<std::pair<std::string, std::string>>;

// The sample label keys a selector matches per sample (e.g. {span_id="..."})
// rather than per series.
bool IsSampleLabelKey(const std::string& key);

struct ProfileSample {
  std::vector<uint32_t> frames;  // LEAF FIRST; indexes into Profile::frames
  int64_t count = 0;             // number of samples (heap types: objects or bytes)
  bool truncated = false;        // the stack was cut at the agent's max depth
  SampleLabels labels;           // empty for most samples
};

struct Profile {
  std::string mode = "cpu";       // "cpu", "wall" or a heap sample type (above)
  int64_t period_nanos = 10000000;  // nanoseconds per sample (1e9 / Hz)
  int64_t start_unix_nanos = 0;
  int64_t end_unix_nanos = 0;
  std::vector<Frame> frames;
  std::vector<ProfileSample> samples;
  // Free-form notes for the reader, written as pprof's Profile.comment (what
  // `go tool pprof -comments` prints); e.g. the collector's note of samples
  // the agents lost ("stackstream: samples_dropped_ring_full=12").
  std::vector<std::string> comments;

  int64_t TotalCount() const;
};

// Builds a Profile, interning frames and merging identical stacks.
class ProfileBuilder {
 public:
  ProfileBuilder() = default;
  ProfileBuilder(const ProfileBuilder&) = delete;
  ProfileBuilder& operator=(const ProfileBuilder&) = delete;

  // Makes room for "frames" more frames and "samples" more samples.
  void Reserve(size_t frames, size_t samples);
  // Returns the index of "frame" in the profile, adding it if new.
  uint32_t InternFrame(const Frame& frame);
  uint32_t InternFrame(Frame&& frame);  // moved from only when new
  // Adds "count" samples of "frames" (leaf first, indexes from InternFrame)
  // with "labels" (sorted by key); samples of one stack with different labels
  // stay distinct.
  void AddSample(const std::vector<uint32_t>& frames, int64_t count, bool truncated = false,
                 const SampleLabels& labels = {}) {
    AddSample(frames.data(), frames.size(), count, truncated, labels);
  }
  void AddSample(const uint32_t* frames, size_t num_frames, int64_t count, bool truncated,
                 const SampleLabels& labels);
  // Adds every sample of "other" (frames re-interned). Widens the time window.
  void Merge(const Profile& other);

  Profile* mutable_profile() { return &profile_; }
  // Moves the result out; the builder is empty afterwards.
  Profile Release();

 private:
  // Hash -> (index, tag) entries in one array (open addressing, linear
  // probing, at most half full): the keys themselves stay in the profile.
  class Index {
   public:
    struct Entry {
      size_t hash = 0;
      uint32_t index = kEmpty;
      uint32_t tag = 0;
    };
    static constexpr uint32_t kEmpty = 0xffffffffu;
    // The entry with "hash" for which matches(entry) holds, or null.
    template <typename Matches>
    const Entry* Find(size_t hash, Matches matches) const {
      if (slots_.empty()) return nullptr;
      for (size_t i = hash & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
        const Entry& e = slots_[i];
        if (e.index == kEmpty) return nullptr;
        if (e.hash == hash && matches(e)) return &e;
      }
    }
    void Insert(size_t hash, uint32_t index, uint32_t tag);
    void Reserve(size_t n);
    void Clear() {
      slots_.clear();
      size_ = 0;
    }

   private:
    std::vector<Entry> slots_;  // size: 0 or a power of two
    size_t size_ = 0;
  };

  template <typename F>
  uint32_t Intern(F&& frame);

  Profile profile_;
  Index frame_index_;   // FrameHash -> index into profile_.frames
  Index sample_index_;  // stack and label set -> index into profile_.samples (tag: label set)
  // Label set -> id (0: no labels), part of a sample's key.
  std::map<SampleLabels, uint32_t> label_sets_;
};

}  // namespace stackstream
