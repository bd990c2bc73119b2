// Graphviz DOT of a Profile's call graph (what `pprof -dot` draws and
// Pyroscope's /pyroscope/render?format=dot returns): one node per function
// with its self and total, one edge per caller -> callee with the samples
// that went through it. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// "max_nodes" > 0 keeps the functions with the largest totals (edges to the
// others are dropped). Values are multiplied by "value_scale" and printed
// with "unit" (e.g. "ns", "samples").
std::string ExportDot(const Profile& profile, int64_t max_nodes, int64_t value_scale,
                      const std::string& unit);

}  // namespace exporter
}  // namespace stackstream
