#include "storage/sample_labels.h"

#include "storage/varint.h"

namespace stackstream {
namespace collector {

namespace {

void PutString(std::string* out, const std::string& s) {
  PutVarint(out, s.size());
  out->append(s);
}

bool GetString(const std::string& in, size_t* pos, std::string* out) {
  uint64_t n = 0;
  if (!GetVarint(in, pos, &n) || n > in.size() - *pos) return false;
  out->assign(in, *pos, n);
  *pos += n;
  return true;
}

}  // namespace

std::string EncodeLabeledEntries(const std::vector<LabeledEntry>& entries) {
  std::string out;
  for (const LabeledEntry& e : entries) {
    PutVarint(&out, e.stack);
    PutVarint(&out, static_cast<uint64_t>(e.count));
    PutVarint(&out, e.labels.size());
    for (const auto& [k, v] : e.labels) {
      PutString(&out, k);
      PutString(&out, v);
    }
  }
  return out;
}

bool DecodeLabeledEntries(const std::string& blob, std::vector<LabeledEntry>* out) {
  out->clear();
  size_t pos = 0;
  while (pos < blob.size()) {
    LabeledEntry e;
    uint64_t count = 0, n = 0;
    if (!GetVarint(blob, &pos, &e.stack) || !GetVarint(blob, &pos, &count) ||
        !GetVarint(blob, &pos, &n) || n > blob.size() - pos) {
      return false;
    }
    e.count = static_cast<int64_t>(count);
    for (uint64_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!GetString(blob, &pos, &k) || !GetString(blob, &pos, &v)) return false;
      e.labels.emplace_back(std::move(k), std::move(v));
    }
    out->push_back(std::move(e));
  }
  return true;
}

void TakeSampleMatchers(ProfileQuery* query, std::vector<LabelMatcher>* sample) {
  TakeMatchers(query, &IsSampleLabelKey, sample);
}

Status LabeledCounts::Create(const std::vector<LabelMatcher>& sample_matchers,
                             LabeledCounts* out) {
  *out = LabeledCounts();
  out->filter_ = !sample_matchers.empty();
  return CompiledMatchers::Compile(sample_matchers, &out->matchers_);
}

bool LabeledCounts::AddLabeled(const std::string& blob) {
  std::vector<LabeledEntry> entries;
  if (!DecodeLabeledEntries(blob, &entries)) return false;
  for (LabeledEntry& e : entries) labeled_[{e.stack, std::move(e.labels)}] += e.count;
  return true;
}

bool LabeledCounts::Selects(const SampleLabels& labels) const {
  if (!filter_) return true;
  Labels map(labels.begin(), labels.end());
  return matchers_.Matches(map);
}

}  // namespace collector
}  // namespace stackstream
