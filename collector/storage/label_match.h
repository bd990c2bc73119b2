// LabelMatch: Prometheus-style label matchers (=, !=, =~, !~) compiled once
// and applied to label sets. Regexes use RE2 syntax, as Prometheus, Pyroscope
// and ClickHouse's match() do, run in linear time, and must match the whole
// value. A label that is absent matches as the empty string ({env=""} selects
// series without "env").
//
// Thread-safety: immutable after Compile; Matches may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/status.h"
#include "storage/store.h"

namespace re2 {
class RE2;
}

namespace stackstream {
namespace collector {

// One compiled label regex (RE2, anchored at both ends). Copies share the
// compiled program.
class LabelRegex {
 public:
  // Fails with InvalidArgument, quoting the pattern and RE2's reason.
  static Status Compile(const std::string& pattern, LabelRegex* out);
  // True when the whole of "value" matches.
  bool FullMatch(const std::string& value) const;

 private:
  std::shared_ptr<const re2::RE2> re_;
};

class CompiledMatchers {
 public:
  // Fails with InvalidArgument naming the matcher when a regex does not compile.
  static Status Compile(const std::vector<LabelMatcher>& matchers, CompiledMatchers* out);

  // True when every matcher holds for "labels".
  bool Matches(const Labels& labels) const;

 private:
  struct Entry {
    LabelMatcher matcher;
    LabelRegex re;  // for kRegex / kNotRegex
  };
  std::vector<Entry> entries_;
};

// Moves the matchers whose label name "is_key" accepts out of "query" into
// "*taken" (sample labels, process labels: matched per sample or per write,
// not per series).
void TakeMatchers(ProfileQuery* query, bool (*is_key)(const std::string&),
                  std::vector<LabelMatcher>* taken);

// Canonical, order-preserving binary form of a label set (varint-length
// prefixed key/value pairs in key order), used as the series key.
std::string EncodeLabels(const Labels& labels);
bool DecodeLabels(const std::string& encoded, Labels* out);

}  // namespace collector
}  // namespace stackstream
