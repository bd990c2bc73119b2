#include "storage/label_match.h"

#include <re2/re2.h>

#include <utility>

#include "storage/varint.h"

namespace stackstream {
namespace collector {

Status LabelRegex::Compile(const std::string& pattern, LabelRegex* out) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);  // bounds the compiled program of hostile patterns
  auto re = std::make_shared<const RE2>("^(?:" + pattern + ")$", options);
  if (!re->ok()) {
    return Status::InvalidArgument("invalid regular expression \"" + pattern.substr(0, 200) +
                                   "\": " + re->error());
  }
  out->re_ = std::move(re);
  return Status::OK();
}

bool LabelRegex::FullMatch(const std::string& value) const {
  return re_ != nullptr && RE2::FullMatch(value, *re_);
}

Status CompiledMatchers::Compile(const std::vector<LabelMatcher>& matchers,
                                 CompiledMatchers* out) {
  out->entries_.clear();
  for (const LabelMatcher& m : matchers) {
    Entry e;
    e.matcher = m;
    if (m.op == LabelMatcher::kRegex || m.op == LabelMatcher::kNotRegex) {
      Status s = LabelRegex::Compile(m.value, &e.re);
      if (!s.ok()) {
        return Status::InvalidArgument("label matcher " + m.name +
                                       (m.op == LabelMatcher::kRegex ? "=~: " : "!~: ") +
                                       s.message());
      }
    }
    out->entries_.push_back(std::move(e));
  }
  return Status::OK();
}

bool CompiledMatchers::Matches(const Labels& labels) const {
  static const std::string kEmpty;
  for (const Entry& e : entries_) {
    auto it = labels.find(e.matcher.name);
    const std::string& v = it == labels.end() ? kEmpty : it->second;
    bool ok = true;
    switch (e.matcher.op) {
      case LabelMatcher::kEq: ok = v == e.matcher.value; break;
      case LabelMatcher::kNotEq: ok = v != e.matcher.value; break;
      case LabelMatcher::kRegex: ok = e.re.FullMatch(v); break;
      case LabelMatcher::kNotRegex: ok = !e.re.FullMatch(v); break;
    }
    if (!ok) return false;
  }
  return true;
}

std::string EncodeLabels(const Labels& labels) {
  std::string out;
  for (const auto& kv : labels) {
    PutVarint(&out, kv.first.size());
    out += kv.first;
    PutVarint(&out, kv.second.size());
    out += kv.second;
  }
  return out;
}

bool DecodeLabels(const std::string& encoded, Labels* out) {
  out->clear();
  size_t pos = 0;
  while (pos < encoded.size()) {
    uint64_t n;
    if (!GetVarint(encoded, &pos, &n) || n > encoded.size() - pos) return false;
    std::string key = encoded.substr(pos, n);
    pos += n;
    if (!GetVarint(encoded, &pos, &n) || n > encoded.size() - pos) return false;
    (*out)[key] = encoded.substr(pos, n);
    pos += n;
  }
  return true;
}

void TakeMatchers(ProfileQuery* query, bool (*is_key)(const std::string&),
                  std::vector<LabelMatcher>* taken) {
  taken->clear();
  std::vector<LabelMatcher> rest;
  for (LabelMatcher& m : query->matchers) {
    (is_key(m.name) ? taken : &rest)->push_back(std::move(m));
  }
  query->matchers = std::move(rest);
}

}  // namespace collector
}  // namespace stackstream
