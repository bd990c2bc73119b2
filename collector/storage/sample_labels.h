// Sample labels in storage (the host threads' labels: span_id, trace_id,
// span_name), shared by every engine.
//
// Sample labels are per-sample data, never series labels: a span id must not
// create a series. An engine stores a summary's samples as it always did
// (every sample counted under its stack, so totals and series are unchanged)
// plus, for the labelled ones, a breakdown: (stack key, count, labels)
// entries in one blob beside the samples row. A query splits its stack counts
// by that breakdown, and a selector's matchers on sample label keys
// (IsSampleLabelKey: {span_id="..."}) select samples, not series.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/profile.h"
#include "format/status.h"
#include "storage/label_match.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

struct LabeledEntry {
  uint64_t stack = 0;  // the engine's stack key (SQLite: row id; ClickHouse: hash)
  int64_t count = 0;
  SampleLabels labels;
};

// Entries <-> blob (varints; labels as length-prefixed strings).
std::string EncodeLabeledEntries(const std::vector<LabeledEntry>& entries);
bool DecodeLabeledEntries(const std::string& blob, std::vector<LabeledEntry>* out);

// Moves the matchers on sample label keys out of "query" into "*sample".
void TakeSampleMatchers(ProfileQuery* query, std::vector<LabelMatcher>* sample);

// Accumulates a query's stack counts split by labels, then emits samples.
// Counts of a stack not covered by labelled entries are its unlabelled
// remainder.
class LabeledCounts {
 public:
  // "sample_matchers" select samples by their labels (an unlabelled sample
  // has every sample label empty); none: every sample.
  static Status Create(const std::vector<LabelMatcher>& sample_matchers, LabeledCounts* out);

  void AddStack(uint64_t stack, int64_t count) { totals_[stack] += count; }
  // False on a malformed blob.
  bool AddLabeled(const std::string& blob);

  // Calls fn(stack, count, labels) for each (stack, labels) whose samples the
  // matchers select, in stack order.
  template <typename Fn>
  Status ForEach(Fn fn) const {
    const SampleLabels none;
    const bool none_matches = Selects(none);
    for (const auto& [stack, total] : totals_) {
      int64_t labeled = 0;
      auto it = labeled_.lower_bound({stack, SampleLabels()});
      for (; it != labeled_.end() && it->first.first == stack; ++it) {
        labeled += it->second;
        if (Selects(it->first.second)) {
          Status s = fn(stack, it->second, it->first.second);
          if (!s.ok()) return s;
        }
      }
      if (none_matches && total > labeled) {
        Status s = fn(stack, total - labeled, none);
        if (!s.ok()) return s;
      }
    }
    return Status::OK();
  }

 private:
  bool Selects(const SampleLabels& labels) const;
  bool filter_ = false;
  CompiledMatchers matchers_;
  std::map<uint64_t, int64_t> totals_;
  std::map<std::pair<uint64_t, SampleLabels>, int64_t> labeled_;
};

}  // namespace collector
}  // namespace stackstream
