#include "export/flamegraph.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

namespace stackstream {
namespace exporter {

std::vector<FlameRow> FlameGraphRows(const Profile& profile, CallTree::Order order) {
  CallTree tree = CallTree::FromProfile(profile, order);
  const auto& nodes = tree.nodes();
  std::vector<FlameRow> rows;
  rows.reserve(nodes.size());
  // Explicit stack: deep stacks must not overflow the thread's stack.
  std::vector<std::pair<uint32_t, int64_t>> todo = {{0, 0}};
  while (!todo.empty()) {
    auto [index, level] = todo.back();
    todo.pop_back();
    const CallTree::Node& n = nodes[index];
    rows.push_back(FlameRow{level, n.total, n.self, n.name});
    for (auto it = n.children.rbegin(); it != n.children.rend(); ++it) {
      todo.emplace_back(*it, level + 1);
    }
  }
  return rows;
}

std::string FlameGraphFrameJson(const std::vector<FlameRow>& rows, int64_t value_scale,
                                const std::string& unit) {
  using nlohmann::json;
  json level = json::array(), value = json::array(), self = json::array(),
       label = json::array();
  for (const FlameRow& r : rows) {
    level.push_back(r.level);
    value.push_back(r.value * value_scale);
    self.push_back(r.self * value_scale);
    label.push_back(r.label);
  }
  json value_field = {{"name", "value"}, {"type", "number"}};
  json self_field = {{"name", "self"}, {"type", "number"}};
  if (!unit.empty()) {
    value_field["config"] = {{"unit", unit}};
    self_field["config"] = {{"unit", unit}};
  }
  json doc = {
      {"schema",
       {{"name", "response"},
        {"meta", {{"preferredVisualisationType", "flamegraph"}}},
        {"fields", json::array({json{{"name", "level"}, {"type", "number"}}, value_field,
                                self_field, json{{"name", "label"}, {"type", "string"}}})}}},
      {"data", {{"values", json::array({level, value, self, label})}}},
  };
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

PyroscopeFlameGraph BuildPyroscopeFlameGraph(const Profile& profile, int64_t max_nodes,
                                             int64_t value_scale) {
  CallTree tree = CallTree::FromProfile(profile, CallTree::Order::kByName);
  const auto& nodes = tree.nodes();

  // Smallest total kept when the tree is too large.
  int64_t min_total = 0;
  if (max_nodes > 0 && static_cast<int64_t>(nodes.size()) > max_nodes) {
    std::vector<int64_t> totals;
    totals.reserve(nodes.size());
    for (const auto& n : nodes) totals.push_back(n.total);
    std::nth_element(totals.begin(), totals.begin() + (max_nodes - 1), totals.end(),
                     std::greater<int64_t>());
    min_total = totals[max_nodes - 1];
  }

  PyroscopeFlameGraph out;
  std::unordered_map<std::string, int64_t> name_index;
  auto intern = [&](const std::string& name) {
    auto it = name_index.find(name);
    if (it != name_index.end()) return it->second;
    int64_t idx = static_cast<int64_t>(out.names.size());
    out.names.push_back(name);
    name_index.emplace(name, idx);
    return idx;
  };
  intern("total");
  std::vector<int64_t> level_end;  // end x of the last node on each level

  struct Item {
    int64_t name;
    int64_t total, self, x, level;
    int32_t node;  // -1 for a synthetic "other"
  };
  auto emit = [&](const Item& it) {
    if (static_cast<size_t>(it.level) >= out.levels.size()) {
      out.levels.resize(it.level + 1);
      level_end.resize(it.level + 1, 0);
    }
    auto& lv = out.levels[it.level];
    lv.push_back((it.x - level_end[it.level]) * value_scale);
    lv.push_back(it.total * value_scale);
    lv.push_back(it.self * value_scale);
    lv.push_back(it.name);
    level_end[it.level] = it.x + it.total;
    out.max_self = std::max(out.max_self, it.self * value_scale);
  };

  std::vector<Item> todo = {{0, nodes[0].total, nodes[0].self, 0, 0, 0}};
  while (!todo.empty()) {
    Item it = todo.back();
    todo.pop_back();
    emit(it);
    if (it.node < 0) continue;
    // Children left to right; pushed in reverse so the leftmost pops first.
    std::vector<Item> kids;
    int64_t x = it.x;
    int64_t other = 0;
    for (uint32_t c : nodes[it.node].children) {
      const CallTree::Node& cn = nodes[c];
      if (cn.total < min_total) {
        other += cn.total;
        continue;
      }
      kids.push_back({intern(cn.name), cn.total, cn.self, x, it.level + 1,
                      static_cast<int32_t>(c)});
      x += cn.total;
    }
    if (other > 0) kids.push_back({intern("other"), other, other, x, it.level + 1, -1});
    for (auto k = kids.rbegin(); k != kids.rend(); ++k) todo.push_back(*k);
  }
  out.total = nodes[0].total * value_scale;
  return out;
}

}  // namespace exporter
}  // namespace stackstream
