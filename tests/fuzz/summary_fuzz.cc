// Fuzz target: summary bytes -> ValidateSummary -> Profile -> pprof.
// What an agent (or anyone who can reach the ingest port) sends is parsed,
// validated and converted; a summary that passes validation must convert
// without a crash and encode to a pprof whose references all resolve.
#include <cstddef>
#include <cstdint>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "format/validate.h"
#include "fuzz_check.h"
#include "pprof_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stackstream::v1::StackSummary summary;
  if (!summary.ParseFromArray(data, static_cast<int>(size))) return 0;
  stackstream::Status s = stackstream::ValidateSummary(summary);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a rejection without a message");
    return 0;
  }
  stackstream::ProfileBuilder builder;
  stackstream::AddSummaryToProfile(summary, &builder);
  stackstream::Profile profile = builder.Release();
  for (const auto& sample : profile.samples) {
    for (uint32_t f : sample.frames) {
      FUZZ_CHECK(f < profile.frames.size(), "frame %u of %zu", f, profile.frames.size());
    }
  }
  stackstream::SummaryLabels(summary);
  stackstream::fuzz::CheckPprof(stackstream::EncodePprof(profile), profile);
  return 0;
}
