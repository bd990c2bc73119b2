// Fuzz target: the label-selector parser. Invariants: a parsed selector
// formats to text that parses to the same matchers; a rejection says why.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "http/selector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using stackstream::collector::LabelMatcher;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<LabelMatcher> matchers;
  std::string prefix;
  stackstream::Status s = stackstream::collector::ParseSelector(text, &matchers, &prefix);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a rejection without a message");
    return 0;
  }
  const std::string formatted = stackstream::collector::FormatSelector(matchers);
  std::vector<LabelMatcher> again;
  s = stackstream::collector::ParseSelector(formatted, &again);
  FUZZ_CHECK(s.ok(), "the formatted selector %s does not parse: %s", formatted.c_str(),
             s.ToString().c_str());
  FUZZ_CHECK(again.size() == matchers.size(), "%zu matchers became %zu", matchers.size(),
             again.size());
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(again[i].name == matchers[i].name && again[i].op == matchers[i].op &&
                   again[i].value == matchers[i].value,
               "matcher %zu changed in %s", i, formatted.c_str());
  }
  return 0;
}
