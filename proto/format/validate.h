// ValidateSummary: applies the rules of proto/stackstream/v1/VALIDATION.md.
// Pure function; thread-safe.
#pragma once

#include <cstdint>

#include "status.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {

// Bounds a collector enforces on one summary. Exceeding a size bound gives
// ResourceExhausted; breaking any other rule gives InvalidArgument.
struct SummaryLimits {
  int64_t max_strings = 1 << 20;
  int64_t max_string_bytes = 64 * 1024;   // one string
  int64_t max_stacks = 1 << 18;
  int64_t max_locations = 1 << 20;
  int64_t max_depth = 1024;               // locations in one stack
  int64_t max_labels = 64;
  int64_t max_label_key_bytes = 128;
  int64_t max_label_value_bytes = 1024;
  int64_t max_sample_labels = 8;          // labels on one sample (rule 10c)
  int64_t max_sample_label_key_bytes = 64;
  int64_t max_sample_label_value_bytes = 256;
};

constexpr uint32_t kCurrentSchemaVersion = 1;

// Returns OK or a status whose message names the field and index at fault,
// e.g. "stacks[3].location_indexes[0]: 17 out of range (12 locations)".
Status ValidateSummary(const v1::StackSummary& summary, const SummaryLimits& limits = {});

}  // namespace stackstream
