// Process labels ("pid"): labels of the process a summary came from, kept
// per write instead of per series.
//
// A fork-per-connection server (PostgreSQL: one process per connection, tens
// of thousands a day) would make one series per process if pid were a series
// label, and /api/v1/services, label queries and the series index would grow
// with every connection. So a series is (service, host, static labels), and
// each engine stores the pid beside every write's samples (SQLite: a column
// of samples and counters; ClickHouse: a column of summaries). pid stays
// queryable: a selector's matchers on it ({pid="123"}, {pid=~"12.*"}) select
// writes, not series; LabelNames/LabelValues list it; an in-use gauge takes
// the latest snapshot of each (series, pid), i.e. of each process. Merged
// profiles do not split samples by pid (as Pyroscope merges a selection's
// series); /api/v1/services' label sets leave it out.
//
// Series written before pid moved out carry "pid" in their labels (SQLite
// databases of schema version < 4): for them that label is the pid.
//
// Thread-safety: immutable after Create.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/status.h"
#include "storage/label_match.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

constexpr char kPidLabel[] = "pid";

bool IsProcessLabelKey(const std::string& key);

// Moves the matchers on process label keys out of "query" into "*process".
void TakeProcessMatchers(ProfileQuery* query, std::vector<LabelMatcher>* process);

class ProcessFilter {
 public:
  static Status Create(const std::vector<LabelMatcher>& matchers, ProcessFilter* out);

  bool empty() const { return empty_; }
  // Whether a write of process "pid" (0: unknown) in a series with
  // "series_labels" is selected.
  bool Selects(int64_t pid, const Labels& series_labels) const;

 private:
  bool empty_ = true;
  CompiledMatchers matchers_;
};

// The pid as a label value ("" for 0).
std::string PidValue(int64_t pid);

}  // namespace collector
}  // namespace stackstream
