// Builders of valid wire summaries for the ingest tests, the load client and
// the ingest benchmark.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace collector {
namespace testing {

// One stack in folded form, ROOT FIRST ("main;work;hot"), and its count.
using FoldedCount = std::pair<std::string, int64_t>;

// A valid CPU summary of "service" from agent "instance" (pid "pid"), window
// [start, start + 10 s), one mapping /usr/bin/<service>, a function and a
// location per distinct frame name, 100 Hz.
v1::StackSummary MakeSummary(const std::string& instance, const std::string& service,
                             int64_t start_unix_nanos, const std::vector<FoldedCount>& stacks,
                             int64_t pid = 4242);

// Sum of sample counts.
int64_t SampleTotal(const v1::StackSummary& summary);

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
