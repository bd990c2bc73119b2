// Call-site selection (Pyroscope's StackTraceSelector.call_site): the part
// of a profile below a function, i.e. the stacks that start with a given
// root-first prefix of function names. Thread-safe (pure functions).
#pragma once

#include <string>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// The samples of "profile" whose root-first frame names begin with
// "call_site" (root first, as display names: FrameName / "[truncated]").
// An empty "call_site" keeps every sample.
Profile SelectCallSite(const Profile& profile, const std::vector<std::string>& call_site);

}  // namespace exporter
}  // namespace stackstream
