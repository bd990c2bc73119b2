// LabelMatch: Prometheus-style label matchers (=, !=, =~, !~) compiled once
// and applied to label sets. Regexes are ECMAScript (std::regex) and must
// match the whole value, as in Prometheus. A label that is absent matches as
// the empty string ({env=""} selects series without "env").
//
// Thread-safety: immutable after Compile; Matches may be called concurrently.
#pragma once

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "format/status.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

class CompiledMatchers {
 public:
  // Fails with InvalidArgument naming the matcher when a regex does not compile.
  static Status Compile(const std::vector<LabelMatcher>& matchers, CompiledMatchers* out);

  // True when every matcher holds for "labels".
  bool Matches(const Labels& labels) const;

 private:
  struct Entry {
    LabelMatcher matcher;
    std::regex re;  // for kRegex / kNotRegex
  };
  std::vector<Entry> entries_;
};

// Canonical, order-preserving binary form of a label set (varint-length
// prefixed key/value pairs in key order), used as the series key.
std::string EncodeLabels(const Labels& labels);
bool DecodeLabels(const std::string& encoded, Labels* out);

}  // namespace collector
}  // namespace stackstream
