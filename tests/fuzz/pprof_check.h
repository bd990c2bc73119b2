// CheckPprof: decodes pprof bytes (profile.proto) without a generated
// schema (protobuf's UnknownFieldSet) and checks them against the Profile
// they were encoded from: every sample's value count matches sample_type,
// every location/function/string reference resolves, and the samples'
// first values sum to the profile's total. Aborts on a mismatch.
#pragma once

#include <string>

#include "format/profile.h"

namespace stackstream {
namespace fuzz {

void CheckPprof(const std::string& bytes, const Profile& profile);

}  // namespace fuzz
}  // namespace stackstream
