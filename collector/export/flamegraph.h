// Flame-graph exports built from a CallTree:
//  - Grafana's flame-graph data frame: rows (level, value, self, label) in
//    depth-first pre-order, a node's parent inferred from the level change;
//  - Pyroscope's FlameGraph levels (what SelectMergeStacktraces returns):
//    names + per-level [x_delta, total, self, name_index] quadruples.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/call_tree.h"
#include "format/profile.h"

namespace stackstream {
namespace exporter {

struct FlameRow {
  int64_t level = 0;
  int64_t value = 0;  // samples in the node and below
  int64_t self = 0;   // samples whose leaf is the node
  std::string label;
};

// Rows of "profile"'s call tree, root "total" at level 0, children ordered as
// "order" says (kByValue reproduces formats.md's worked example).
std::vector<FlameRow> FlameGraphRows(const Profile& profile,
                                     CallTree::Order order = CallTree::Order::kByValue);

// The rows as a Grafana data frame in JSON (dataframe "schema" + "data"
// form, fields level, value, self, label). Values are multiplied by
// "value_scale" (e.g. period_nanos with unit "ns"); "unit" goes in the value
// and self fields' config when not empty.
std::string FlameGraphFrameJson(const std::vector<FlameRow>& rows, int64_t value_scale,
                                const std::string& unit);

struct PyroscopeFlameGraph {
  std::vector<std::string> names;             // names[0] == "total"
  std::vector<std::vector<int64_t>> levels;   // 4 int64s per node
  int64_t total = 0;
  int64_t max_self = 0;
};

// Pyroscope's levels encoding. Values are multiplied by "value_scale". When
// "max_nodes" > 0 and the tree is larger, nodes smaller than the max_nodes-th
// largest are merged into one "other" child of their parent.
PyroscopeFlameGraph BuildPyroscopeFlameGraph(const Profile& profile, int64_t max_nodes,
                                             int64_t value_scale);

}  // namespace exporter
}  // namespace stackstream
