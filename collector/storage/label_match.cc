#include "storage/label_match.h"

#include "storage/varint.h"

namespace stackstream {
namespace collector {

Status CompiledMatchers::Compile(const std::vector<LabelMatcher>& matchers,
                                 CompiledMatchers* out) {
  out->entries_.clear();
  for (const LabelMatcher& m : matchers) {
    Entry e;
    e.matcher = m;
    if (m.op == LabelMatcher::kRegex || m.op == LabelMatcher::kNotRegex) {
      try {
        e.re = std::regex(m.value, std::regex::ECMAScript | std::regex::optimize);
      } catch (const std::regex_error& err) {
        return Status::InvalidArgument("label matcher " + m.name +
                                       (m.op == LabelMatcher::kRegex ? "=~" : "!~") + "\"" +
                                       m.value + "\": invalid regex: " + err.what());
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
      case LabelMatcher::kRegex: ok = std::regex_match(v, e.re); break;
      case LabelMatcher::kNotRegex: ok = !std::regex_match(v, e.re); break;
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

}  // namespace collector
}  // namespace stackstream
