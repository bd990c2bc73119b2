// Top functions of a Profile, as in `pprof -top`: self (samples whose leaf
// is the function) and total (samples whose stack contains it, counted once
// per stack even under recursion). Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

struct TopRow {
  std::string function;
  std::string module;
  std::string file;   // source file of the function's frames; empty when unknown
  int64_t line = 0;   // lowest line seen in "file" (near the definition); 0 when unknown
  int64_t self = 0;   // samples
  int64_t total = 0;  // samples
  double self_pct = 0;   // 100 * self / profile total
  double total_pct = 0;  // 100 * total / profile total
};

// Rows keyed by (function, module), sorted by self descending, then total
// descending, then function name. "limit" > 0 keeps the first "limit" rows.
std::vector<TopRow> Top(const Profile& profile, size_t limit = 0);

}  // namespace exporter
}  // namespace stackstream
