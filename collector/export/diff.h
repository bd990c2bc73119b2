// Diff of two Profiles (a base and a target, e.g. two time ranges or two
// selectors) per function: self/total in each, their percentages of each
// profile's total, and the deltas. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

struct DiffRow {
  std::string function;
  std::string module;
  int64_t base_self = 0, base_total = 0;  // samples in the base profile
  int64_t self = 0, total = 0;            // samples in the target profile
  double base_self_pct = 0, base_total_pct = 0;
  double self_pct = 0, total_pct = 0;
  int64_t delta_self = 0, delta_total = 0;        // target - base (samples)
  double delta_self_pct = 0, delta_total_pct = 0;  // target - base (points)
};

struct DiffResult {
  int64_t base_total = 0;    // samples in the base profile
  int64_t target_total = 0;  // samples in the target profile
  std::vector<DiffRow> rows;
};

// Rows for every function in either profile, sorted by |delta_self_pct|
// descending, then |delta_self|, then name (percentages compare ranges of
// different lengths fairly). "limit" > 0 keeps the first "limit" rows.
DiffResult Diff(const Profile& base, const Profile& target, size_t limit = 0);

}  // namespace exporter
}  // namespace stackstream
