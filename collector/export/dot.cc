#include "export/dot.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

namespace {

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}

std::string Percent(int64_t part, int64_t whole) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return buf;
}

}  // namespace

std::string ExportDot(const Profile& profile, int64_t max_nodes, int64_t value_scale,
                      const std::string& unit) {
  struct Fn {
    int64_t self = 0, total = 0;
  };
  std::map<std::string, Fn> fns;
  std::map<std::pair<std::string, std::string>, int64_t> edges;
  int64_t grand = 0;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0) continue;
    const std::vector<std::string> names = RootFirstNames(profile, sample);
    grand += sample.count;
    if (names.empty()) continue;
    std::set<std::string> seen;
    std::set<std::pair<std::string, std::string>> seen_edges;
    for (size_t i = 0; i < names.size(); ++i) {
      if (seen.insert(names[i]).second) fns[names[i]].total += sample.count;
      if (i > 0 && seen_edges.insert({names[i - 1], names[i]}).second) {
        edges[{names[i - 1], names[i]}] += sample.count;
      }
    }
    fns[names.back()].self += sample.count;
  }
  std::vector<std::pair<std::string, Fn>> order(fns.begin(), fns.end());
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second.total > b.second.total; });
  if (max_nodes > 0 && static_cast<int64_t>(order.size()) > max_nodes) order.resize(max_nodes);
  std::map<std::string, size_t> id;
  for (size_t i = 0; i < order.size(); ++i) id[order[i].first] = i + 1;

  const std::string u = unit.empty() ? "" : " " + unit;
  std::string out = "digraph \"" + std::string(profile.mode.empty() ? "profile" : profile.mode) +
                    "\" {\n  node [style=filled fillcolor=\"#f8f8f8\" shape=box];\n";
  out += "  L [shape=box fontsize=16 label=" +
         Quote("Total: " + std::to_string(grand * value_scale) + u + "\\l") + "];\n";
  for (size_t i = 0; i < order.size(); ++i) {
    const auto& [name, fn] = order[i];
    const std::string label = name + "\n" + std::to_string(fn.self * value_scale) + u + " (" +
                              Percent(fn.self, grand) + ")\nof " +
                              std::to_string(fn.total * value_scale) + u + " (" +
                              Percent(fn.total, grand) + ")";
    out += "  N" + std::to_string(i + 1) + " [label=" + Quote(label) +
           " fontsize=" + std::to_string(8 + (grand > 0 ? 16 * fn.self / grand : 0)) + "];\n";
  }
  for (const auto& [edge, count] : edges) {
    auto from = id.find(edge.first), to = id.find(edge.second);
    if (from == id.end() || to == id.end()) continue;
    out += "  N" + std::to_string(from->second) + " -> N" + std::to_string(to->second) +
           " [label=" + Quote(std::to_string(count * value_scale) + u) +
           " weight=" + std::to_string(grand > 0 ? 1 + 100 * count / grand : 1) + "];\n";
  }
  out += "}\n";
  return out;
}

}  // namespace exporter
}  // namespace stackstream
