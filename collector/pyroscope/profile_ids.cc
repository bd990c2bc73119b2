#include "pyroscope/profile_ids.h"

#include "http/selector.h"
#include "pyroscope/connect.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

namespace {
constexpr char kPrefix[] = "ls-";
constexpr char kHex[] = "0123456789abcdef";
}  // namespace

std::string ProfileIdOfLabelSet(const Labels& labels) {
  std::vector<LabelMatcher> matchers;
  for (const auto& [k, v] : labels) matchers.push_back(LabelMatcher{k, LabelMatcher::kEq, v});
  const std::string text = FormatSelector(matchers);
  std::string out = kPrefix;
  for (unsigned char c : text) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::vector<LabelMatcher> LabelSetOfProfileId(const std::string& id) {
  const std::string prefix = kPrefix;
  auto bad = [&]() {
    Fail("invalid_argument", "profile_id_selector: \"" + id.substr(0, 100) +
                                 "\" is not a profile ID of this collector");
  };
  if (id.compare(0, prefix.size(), prefix) != 0 || (id.size() - prefix.size()) % 2 != 0) bad();
  std::string text;
  for (size_t i = prefix.size(); i + 1 < id.size(); i += 2) {
    auto nibble = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      bad();
      return 0;
    };
    text.push_back(static_cast<char>(nibble(id[i]) << 4 | nibble(id[i + 1])));
  }
  std::vector<LabelMatcher> matchers;
  if (!ParseSelector(text, &matchers).ok()) bad();
  for (const LabelMatcher& m : matchers) {
    if (m.op != LabelMatcher::kEq) bad();
  }
  return matchers;
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
