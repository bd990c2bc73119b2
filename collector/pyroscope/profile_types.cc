#include "pyroscope/profile_types.h"

#include <algorithm>

namespace stackstream {
namespace collector {
namespace pyroscope {

const std::vector<ProfileTypeInfo>& AllProfileTypes() {
  static const std::vector<ProfileTypeInfo>* const kTypes = new std::vector<ProfileTypeInfo>{
      {"process_cpu:cpu:nanoseconds:cpu:nanoseconds", "process_cpu", "cpu", "nanoseconds", "cpu",
       "nanoseconds", "cpu", true, "samples"},
      {"process_cpu:samples:count:cpu:nanoseconds", "process_cpu", "samples", "count", "cpu",
       "nanoseconds", "cpu", false, "samples"},
      {"wall:wall:nanoseconds:wall:nanoseconds", "wall", "wall", "nanoseconds", "wall",
       "nanoseconds", "wall", true, "samples"},
      {"memory:alloc_objects:count:space:bytes", "memory", "alloc_objects", "count", "space",
       "bytes", "alloc_objects", false, "objects"},
      {"memory:alloc_space:bytes:space:bytes", "memory", "alloc_space", "bytes", "space", "bytes",
       "alloc_space", false, "bytes"},
      {"memory:inuse_objects:count:space:bytes", "memory", "inuse_objects", "count", "space",
       "bytes", "inuse_objects", false, "objects"},
      {"memory:inuse_space:bytes:space:bytes", "memory", "inuse_space", "bytes", "space", "bytes",
       "inuse_space", false, "bytes"},
  };
  return *kTypes;
}

const ProfileTypeInfo* FindProfileType(const std::string& id) {
  for (const ProfileTypeInfo& t : AllProfileTypes()) {
    if (id == t.id) return &t;
  }
  return nullptr;
}

int64_t ValueScale(const ProfileTypeInfo& type, int64_t period_nanos) {
  return type.scale_by_period ? std::max<int64_t>(period_nanos, 1) : 1;
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
