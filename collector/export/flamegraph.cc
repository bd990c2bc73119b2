#include "export/flamegraph.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>

#include "export/max_nodes.h"

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
  json level = json::array(), value = json::array(), self = json::array(), label = json::array();
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
  CallTree tree =
      CallTree::FromProfile(TruncateToMaxNodes(profile, max_nodes), CallTree::Order::kByName);
  const auto& nodes = tree.nodes();

  PyroscopeFlameGraph out;
  std::unordered_map<std::string, int64_t> name_index;
  auto intern = [&](const std::string& name) {
    auto [it, added] = name_index.try_emplace(name, static_cast<int64_t>(out.names.size()));
    if (added) out.names.push_back(name);
    return it->second;
  };
  intern("total");
  std::vector<int64_t> level_end;  // end x of the last node on each level

  struct Item {
    uint32_t node;
    int64_t x, level;
  };
  std::vector<Item> todo = {{0, 0, 0}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const CallTree::Node& n = nodes[it.node];
    if (static_cast<size_t>(it.level) >= out.levels.size()) {
      out.levels.resize(it.level + 1);
      level_end.resize(it.level + 1, 0);
    }
    auto& lv = out.levels[it.level];
    lv.push_back((it.x - level_end[it.level]) * value_scale);
    lv.push_back(n.total * value_scale);
    lv.push_back(n.self * value_scale);
    lv.push_back(intern(n.name));
    level_end[it.level] = it.x + n.total;
    out.max_self = std::max(out.max_self, n.self * value_scale);
    // Children from the parent's start, left to right; pushed in reverse so
    // the leftmost pops first.
    const size_t first = todo.size();
    int64_t x = it.x;
    for (uint32_t c : n.children) {
      todo.push_back({c, x, it.level + 1});
      x += nodes[c].total;
    }
    std::reverse(todo.begin() + first, todo.end());
  }
  out.total = nodes[0].total * value_scale;
  return out;
}

namespace {

// A node of the union of two call trees.
struct DiffNode {
  std::string name;
  int64_t left_total = 0, left_self = 0, right_total = 0, right_self = 0;
  std::map<std::string, uint32_t> children;  // by name
};

void AddTree(const CallTree& tree, bool left, std::vector<DiffNode>* out) {
  const auto& nodes = tree.nodes();
  std::vector<std::pair<uint32_t, uint32_t>> todo = {{0, 0}};  // (tree node, diff node)
  while (!todo.empty()) {
    auto [tn, dn] = todo.back();
    todo.pop_back();
    const CallTree::Node& n = nodes[tn];
    (left ? (*out)[dn].left_total : (*out)[dn].right_total) += n.total;
    (left ? (*out)[dn].left_self : (*out)[dn].right_self) += n.self;
    for (uint32_t c : n.children) {
      auto [it, added] =
          (*out)[dn].children.try_emplace(nodes[c].name, static_cast<uint32_t>(out->size()));
      if (added) out->push_back(DiffNode{nodes[c].name, 0, 0, 0, 0, {}});
      todo.emplace_back(c, it->second);
    }
  }
}

}  // namespace

PyroscopeFlameGraphDiff BuildPyroscopeFlameGraphDiff(const Profile& left, int64_t left_scale,
                                                     const Profile& right, int64_t right_scale,
                                                     int64_t max_nodes) {
  std::vector<DiffNode> nodes = {DiffNode{"total", 0, 0, 0, 0, {}}};
  AddTree(CallTree::FromProfile(TruncateToMaxNodes(left, max_nodes), CallTree::Order::kByName),
          true, &nodes);
  AddTree(CallTree::FromProfile(TruncateToMaxNodes(right, max_nodes), CallTree::Order::kByName),
          false, &nodes);

  PyroscopeFlameGraphDiff out;
  std::unordered_map<std::string, int64_t> name_index;
  auto intern = [&](const std::string& name) {
    auto [it, added] = name_index.try_emplace(name, static_cast<int64_t>(out.names.size()));
    if (added) out.names.push_back(name);
    return it->second;
  };
  intern("total");
  std::vector<int64_t> left_end, right_end;
  struct Item {
    uint32_t node;
    int64_t lx, rx, level;
  };
  std::vector<Item> todo = {{0, 0, 0, 0}};
  while (!todo.empty()) {
    const Item it = todo.back();
    todo.pop_back();
    const DiffNode& n = nodes[it.node];
    if (static_cast<size_t>(it.level) >= out.levels.size()) {
      out.levels.resize(it.level + 1);
      left_end.resize(it.level + 1, 0);
      right_end.resize(it.level + 1, 0);
    }
    auto& lv = out.levels[it.level];
    lv.push_back((it.lx - left_end[it.level]) * left_scale);
    lv.push_back(n.left_total * left_scale);
    lv.push_back(n.left_self * left_scale);
    lv.push_back((it.rx - right_end[it.level]) * right_scale);
    lv.push_back(n.right_total * right_scale);
    lv.push_back(n.right_self * right_scale);
    lv.push_back(intern(n.name));
    left_end[it.level] = it.lx + n.left_total;
    right_end[it.level] = it.rx + n.right_total;
    out.max_self = std::max({out.max_self, n.left_self * left_scale, n.right_self * right_scale});
    const size_t first = todo.size();
    int64_t lx = it.lx, rx = it.rx;
    for (const auto& [name, c] : n.children) {
      todo.push_back({c, lx, rx, it.level + 1});
      lx += nodes[c].left_total;
      rx += nodes[c].right_total;
    }
    std::reverse(todo.begin() + first, todo.end());
  }
  out.left_ticks = nodes[0].left_total * left_scale;
  out.right_ticks = nodes[0].right_total * right_scale;
  out.total = out.left_ticks + out.right_ticks;
  return out;
}

std::string EncodePyroscopeTree(const Profile& profile, int64_t max_nodes, int64_t value_scale) {
  CallTree tree =
      CallTree::FromProfile(TruncateToMaxNodes(profile, max_nodes), CallTree::Order::kByName);
  const auto& nodes = tree.nodes();
  std::string out;
  auto uvarint = [&out](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  if (nodes[0].total == 0) return out;
  std::vector<uint32_t> todo = {0};
  while (!todo.empty()) {
    const uint32_t index = todo.back();
    todo.pop_back();
    const CallTree::Node& n = nodes[index];
    const std::string& name = index == 0 ? std::string() : n.name;
    uvarint(name.size());
    out += name;
    uvarint(static_cast<uint64_t>(n.self * value_scale));
    uvarint(n.children.size());
    for (uint32_t c : n.children) todo.push_back(c);
  }
  return out;
}

}  // namespace exporter
}  // namespace stackstream
