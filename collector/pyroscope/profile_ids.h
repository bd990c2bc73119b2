// Profile IDs of SelectSeries exemplars. Pyroscope names each stored
// profile by a UUID; stackstream stores streams of summaries, so an exemplar
// names the stream (its stored label set) that contributed most to a point,
// and a SelectMergeStacktraces / SelectMergeProfile request with that ID in
// profile_id_selector reads that stream over the request's range.
// Form: "ls-" + lower-case hex of the label set's selector text.
// Thread-safe (pure functions).
#pragma once

#include <string>
#include <vector>

#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

std::string ProfileIdOfLabelSet(const Labels& labels);

// The equality matchers of the label set "id" names; fails with
// invalid_argument for an ID this collector did not make.
std::vector<LabelMatcher> LabelSetOfProfileId(const std::string& id);

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
