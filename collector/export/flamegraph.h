// Flame-graph exports built from a CallTree:
//  - Grafana's flame-graph data frame: rows (level, value, self, label) in
//    depth-first pre-order, a node's parent inferred from the level change;
//  - Pyroscope's FlameGraph levels (what SelectMergeStacktraces returns and
//    flamebearer JSON carries): names + per-level [x_delta, total, self,
//    name_index] quadruples; the diff form with 7 values per node;
//  - Pyroscope's tree bytes (PROFILE_FORMAT_TREE).
// "max_nodes" truncation is export/max_nodes.h's.
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
  std::vector<std::string> names;            // names[0] == "total"
  std::vector<std::vector<int64_t>> levels;  // 4 int64s per node
  int64_t total = 0;
  int64_t max_self = 0;
};

// Pyroscope's levels encoding. Values are multiplied by "value_scale". When
// "max_nodes" > 0 the tree is cut by TruncateToMaxNodes first. Children are
// ordered by name.
PyroscopeFlameGraph BuildPyroscopeFlameGraph(const Profile& profile, int64_t max_nodes,
                                             int64_t value_scale);

struct PyroscopeFlameGraphDiff {
  std::vector<std::string> names;  // names[0] == "total"
  // 7 int64s per node: left x_delta, left total, left self, right x_delta,
  // right total, right self, name index.
  std::vector<std::vector<int64_t>> levels;
  int64_t total = 0;       // left_ticks + right_ticks
  int64_t max_self = 0;    // largest self on either side
  int64_t left_ticks = 0;  // root total of "left"
  int64_t right_ticks = 0;
};

// The union of the call trees of "left" and "right" (each cut by
// TruncateToMaxNodes first), children ordered by name; a node missing on one
// side has 0 there. Each side's values are multiplied by its scale.
PyroscopeFlameGraphDiff BuildPyroscopeFlameGraphDiff(const Profile& left, int64_t left_scale,
                                                     const Profile& right, int64_t right_scale,
                                                     int64_t max_nodes);

// Pyroscope's tree bytes: depth-first, one record per node, the root first
// with an empty name: uvarint(len(name)), name, uvarint(self),
// uvarint(number of children). Values multiplied by "value_scale".
std::string EncodePyroscopeTree(const Profile& profile, int64_t max_nodes, int64_t value_scale);

}  // namespace exporter
}  // namespace stackstream
