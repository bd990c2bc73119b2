// Conversions between the wire summary (proto) and the domain Profile.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "profile.h"
#include "status.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {

// Appends the samples of a VALID summary (see ValidateSummary) to "builder",
// expanding inline lines into frames. Sets mode/period/time window.
// REQUIRES: ValidateSummary(summary).ok()
// Heap summaries: the clock samples only (none when only heap is profiled).
void AddSummaryToProfile(const v1::StackSummary& summary, ProfileBuilder* builder);

// Appends the samples of one of its sample sets (heap profiles) instead:
// mode = set.type, period_nanos = 1.
// REQUIRES: ValidateSummary(summary).ok(), "set" one of summary.sample_sets()
void AddSampleSetToProfile(const v1::StackSummary& summary, const v1::SampleSet& set,
                           ProfileBuilder* builder);

// Labels of a summary as a map, with "service" (from process.service) added.
std::map<std::string, std::string> SummaryLabels(const v1::StackSummary& summary);

const char* ModeName(v1::SamplingMode mode);

// Adds the non-zero drop counters of a summary to "*out" by field name
// ("samples_dropped_ring_full", ...): counts over a range are sums.
void AddSummaryCounters(const v1::Counters& counters, std::map<std::string, int64_t>* out);

// One pprof comment per non-zero counter, e.g.
// "stackstream: samples_dropped_ring_full=12" (`go tool pprof -comments`).
std::vector<std::string> CounterComments(const std::map<std::string, int64_t>& counters);  // "cpu", "wall" or "unknown"

}  // namespace stackstream
