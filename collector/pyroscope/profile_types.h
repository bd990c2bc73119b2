// The one table that maps stackstream's profile modes (Profile::mode, the
// Store's ProfileQuery::mode) to Pyroscope profile type IDs
// ("name:sample_type:sample_unit:period_type:period_unit", what Grafana's
// profile-type picker shows and every query names). IDs are stable: Grafana
// dashboards store them.
// Thread-safe (constant data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stackstream {
namespace collector {
namespace pyroscope {

struct ProfileTypeInfo {
  const char* id;    // e.g. "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
  const char* name;  // the ID's first part (Pyroscope's __name__)
  const char* sample_type;
  const char* sample_unit;
  const char* period_type;
  const char* period_unit;
  const char* mode;      // stackstream's mode
  bool scale_by_period;  // value = samples x Profile::period_nanos; else samples
  const char* units;     // flamebearer metadata.units ("samples", "objects", "bytes")
};

// Every profile type, in the order ProfileTypes lists them.
const std::vector<ProfileTypeInfo>& AllProfileTypes();

// The type with "id", or null.
const ProfileTypeInfo* FindProfileType(const std::string& id);

// The value of one stored sample of "type" in a profile whose period is
// "period_nanos": period_nanos (at least 1) when scaled, else 1.
int64_t ValueScale(const ProfileTypeInfo& type, int64_t period_nanos);

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
