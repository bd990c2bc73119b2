// Pyroscope's "max nodes" truncation, the one implementation every flame-graph
// export uses (Pyroscope levels, /pyroscope/render, Grafana frame rows,
// speedscope, folded): the call tree keeps its "max_nodes" largest nodes (by
// total; the root does not count), and the children of a node that fall
// below that size are merged into one child named "other" (self = total =
// their sum), as Pyroscope's tree truncation does. Totals are unchanged.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// Name of the node that stands for the truncated children of a node.
inline constexpr char kOtherFrame[] = "other";

// "profile" with every stack cut where it leaves the "max_nodes" largest
// nodes of its call tree and ended with a frame named kOtherFrame. Returns
// the profile unchanged when "max_nodes" <= 0 or the tree is small enough.
Profile TruncateToMaxNodes(const Profile& profile, int64_t max_nodes);

}  // namespace exporter
}  // namespace stackstream
