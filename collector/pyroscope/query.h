// What the Pyroscope API's requests have in common, translated to the same
// Store queries the native /api/v1 endpoints make: label selectors (with
// Pyroscope's "service_name" for stackstream's "service" and the profile-type
// pseudo-labels __profile_type__, __name__, __type__, __unit__,
// __period_type__, __period_unit__), millisecond time ranges, the services a
// selector selects, the profile types present, and merged profiles.
// Failures are thrown as ConnectFailure (connect.h).
// Thread-safe: pure functions over a thread-safe Store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/profile.h"
#include "pyroscope/profile_types.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

inline constexpr int64_t kNanosPerMilli = 1000000;
inline constexpr int64_t kNanosPerSecond = 1000000000;

// A parsed label selector.
struct Selection {
  std::vector<LabelMatcher> labels;       // store labels ("service", not "service_name")
  std::vector<LabelMatcher> type_labels;  // matchers on the profile-type pseudo-labels
};

// Parses "selector" ("{}", "", or Prometheus form). A metric-like prefix
// ("process_cpu:cpu:nanoseconds:cpu:nanoseconds{...}" as /pyroscope/render
// sends) is returned in "*prefix" when not null, else rejected. "what" names
// the field in errors.
Selection ParseSelection(const std::string& selector, const std::string& what,
                         std::string* prefix = nullptr);

// Pyroscope label name <-> stackstream label name ("service_name" <-> "service").
std::string ToStoreLabel(const std::string& name);
std::string ToPyroscopeLabel(const std::string& name);

// Whether "type" satisfies the selection's pseudo-label matchers.
bool TypeMatches(const Selection& selection, const ProfileTypeInfo& type);
// The value of pseudo-label "name" (e.g. "__profile_type__") for "type"; ""
// for other names.
std::string TypeLabel(const ProfileTypeInfo& type, const std::string& name);
// Whether "name" is a profile-type pseudo-label.
bool IsTypeLabel(const std::string& name);
// Whether "value" satisfies "m" (regexes fully anchored).
bool MatcherMatches(const LabelMatcher& m, const std::string& value);

// [from, to) in nanoseconds from a request's milliseconds. Both 0: the last
// hour; end 0: now; start 0 with "all_time_when_no_start": from 0.
void Range(int64_t start_ms, int64_t end_ms, int64_t now_unix_nanos, int64_t* from, int64_t* to,
           bool all_time_when_no_start = false);

// The services "labels" select (sorted; all services when no "service"
// matcher; at most 1000).
std::vector<std::string> SelectServices(Store* store, const std::vector<LabelMatcher>& labels);

// The profile types with data for "service" (all selected services when
// empty) in [from, to) that match "selection".
std::vector<const ProfileTypeInfo*> PresentTypes(Store* store, const Selection& selection,
                                                 const std::string& service, int64_t from,
                                                 int64_t to);

// The merged profile of "type" over every selected service in [from, to)
// (empty when the selection's type matchers exclude "type").
Profile MergedProfile(Store* store, const Selection& selection, const ProfileTypeInfo& type,
                      int64_t from, int64_t to);

// The type named "id"; fails with invalid_argument naming "what".
const ProfileTypeInfo& RequireProfileType(const std::string& id, const std::string& what);

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
