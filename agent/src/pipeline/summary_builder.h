// SummaryBuilder: raw stacks of one flush window -> one portable
// v1::StackSummary (stacks deduplicated with counts per thread, string table,
// mappings, functions, locations with inline lines, threads, counters).
//
// Each sample's PCs are resolved against the ModuleSet it carries
// (RawSample::modules, the host's modules when it was taken). Mappings are
// deduplicated by module identity (path + build-id + start), locations by
// (mapping, address) and stacks by their locations, so samples of several
// module generations of one process (sets are rebuilt per generation) share
// them, and an address that means another module in another generation
// (dlclose + dlopen) does not.
//
// Memory is bounded: at most Options::max_stacks distinct stacks per window.
// A sample whose stack would exceed that is kept as its leaf alone (marked
// truncated) while Options::reserve_stacks more leaf-only stacks fit, and
// dropped otherwise; either way its weight is counted in
// counters.stacks_dropped_limit.
//
// Not thread-safe: used by the session's thread only.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pipeline/symbolizer.h"
#include "pipeline/thread_names.h"
#include "sample_sink.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace agent {
namespace pipeline {

class SummaryBuilder {
 public:
  struct Options {
    size_t max_stacks = 16384;
    size_t reserve_stacks = 1024;
    size_t max_threads = 4096;
    // Distinct sample label sets (thread labels) per window; samples with a
    // further set keep their stack without labels.
    size_t max_label_sets = 16384;
    bool keep_threads = true;
  };

  // "identity", "labels" (sorted by key, keys unique), "mode" and
  // "period_nanos" are copied into every summary. "symbolizer" and
  // "thread_names" must outlive the builder.
  SummaryBuilder(v1::ProcessIdentity identity, std::vector<v1::Label> labels,
                 v1::SamplingMode mode, int64_t period_nanos, Symbolizer* symbolizer,
                 ThreadNames* thread_names, Options options);

  // Starts the first window at "start_ns" (CLOCK_REALTIME ns).
  void StartWindow(int64_t start_ns);

  void Add(const RawSample& sample);

  // Heap profiling is on: every summary carries the four heap sample sets
  // (inuse ones even when empty: they are snapshots).
  void SetHeap(bool on) { heap_ = on; }

  // Closes the current window at "end_ns" into "*summary" (cleared first),
  // adding "counters" to the builder's own (stacks_dropped_limit), and starts
  // the next window at "end_ns".
  void Finish(const v1::Counters& counters, int64_t end_ns, v1::StackSummary* summary);

  int64_t window_samples() const { return window_samples_; }
  size_t window_stacks() const { return static_cast<size_t>(current_.stacks_size()); }

 private:
  struct KeyHash {
    size_t operator()(const std::vector<uint64_t>& v) const;
  };
  struct PairHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
      return std::hash<uint64_t>()(p.first * 0x9e3779b97f4a7c15ULL ^ p.second);
    }
  };
  void Reset();
  uint32_t InternString(const std::string& s);
  uint32_t InternLocation(const ModuleSet& modules, uint64_t address);
  uint32_t InternMapping(const Module* module);
  uint32_t ThreadIndex(int32_t tid);
  // The stack of "pcs" resolved against "modules" (an existing one with the
  // same locations, or a new one); remembered under key_.
  uint32_t AddStack(const ModuleSet& modules, const uint64_t* pcs, uint32_t depth, bool truncated);

  const v1::ProcessIdentity identity_;
  const std::vector<v1::Label> labels_;
  const v1::SamplingMode mode_;
  const int64_t period_nanos_;
  Symbolizer* const symbolizer_;
  ThreadNames* const thread_names_;
  const Options options_;

  int64_t window_start_ns_ = 0;
  int64_t window_samples_ = 0;
  int64_t stacks_dropped_limit_ = 0;
  v1::StackSummary current_;  // tables built up during the window
  std::unordered_map<std::string, uint32_t> strings_;
  // (ModuleSet serial, address looked up) -> location index
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, PairHash> set_locations_;
  // (mapping index, address looked up) -> location index
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, PairHash> locations_;
  std::unordered_map<std::string, uint32_t> mappings_;  // path, build-id, start -> index
  std::unordered_map<std::string, uint32_t> functions_;
  // (ModuleSet serial, pcs..., truncated flag) -> stack index
  std::unordered_map<std::vector<uint64_t>, uint32_t, KeyHash> stack_index_;
  // (location indexes..., truncated) -> stack index
  std::unordered_map<std::vector<uint64_t>, uint32_t, KeyHash> stacks_by_locations_;
  std::vector<uint64_t> loc_key_;                  // scratch
  std::unordered_map<int32_t, uint32_t> threads_;  // tid -> index + 1
  std::unordered_map<uint64_t, int64_t> counts_;   // stack << 32 | thread -> count
  // Labelled clock samples: (stack << 32 | thread, label set) -> count.
  std::map<std::pair<uint64_t, uint32_t>, int64_t> labeled_counts_;
  // Label sets as (key, value) string indexes sorted by key -> id.
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, uint32_t> label_sets_;
  std::vector<const std::vector<std::pair<uint32_t, uint32_t>>*> label_set_by_id_;
  std::vector<std::pair<std::string, uint32_t>> label_scratch_;
  // stack << 32 | thread -> alloc_objects, alloc_space, inuse_objects, inuse_space
  std::unordered_map<uint64_t, std::array<int64_t, 4>> heap_counts_;
  bool heap_ = false;
  std::vector<uint64_t> key_;                      // scratch
  size_t leaf_only_stacks_ = 0;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
