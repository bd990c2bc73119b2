#include "storage/process_labels.h"

namespace stackstream {
namespace collector {

bool IsProcessLabelKey(const std::string& key) { return key == kPidLabel; }

void TakeProcessMatchers(ProfileQuery* query, std::vector<LabelMatcher>* process) {
  TakeMatchers(query, &IsProcessLabelKey, process);
}

Status ProcessFilter::Create(const std::vector<LabelMatcher>& matchers, ProcessFilter* out) {
  *out = ProcessFilter();
  out->empty_ = matchers.empty();
  return CompiledMatchers::Compile(matchers, &out->matchers_);
}

bool ProcessFilter::Selects(int64_t pid, const Labels& series_labels) const {
  if (empty_) return true;
  auto legacy = series_labels.find(kPidLabel);
  Labels labels;
  labels.emplace(kPidLabel, legacy != series_labels.end() ? legacy->second : PidValue(pid));
  return matchers_.Matches(labels);
}

std::string PidValue(int64_t pid) { return pid != 0 ? std::to_string(pid) : std::string(); }

}  // namespace collector
}  // namespace stackstream
