#include "export/call_tree.h"

#include <algorithm>
#include <unordered_map>

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

CallTree CallTree::FromProfile(const Profile& profile, Order order) {
  CallTree tree;
  tree.nodes_.push_back(Node{"total", 0, 0, {}});
  // (parent index, child name) -> child index.
  std::unordered_map<ChildKey, uint32_t, ChildKeyHash> index;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0) continue;
    uint32_t node = 0;
    tree.nodes_[0].total += sample.count;
    for (std::string& name : RootFirstNames(profile, sample)) {
      ChildKey key{node, std::move(name)};
      auto it = index.find(key);
      uint32_t child;
      if (it == index.end()) {
        child = static_cast<uint32_t>(tree.nodes_.size());
        tree.nodes_.push_back(Node{key.name, 0, 0, {}});
        tree.nodes_[node].children.push_back(child);
        index.emplace(std::move(key), child);
      } else {
        child = it->second;
      }
      tree.nodes_[child].total += sample.count;
      node = child;
    }
    tree.nodes_[node].self += sample.count;
  }
  tree.Sort(order);
  return tree;
}

void CallTree::Sort(Order order) {
  for (Node& node : nodes_) {
    std::sort(node.children.begin(), node.children.end(), [&](uint32_t a, uint32_t b) {
      const Node& na = nodes_[a];
      const Node& nb = nodes_[b];
      if (order == Order::kByValue && na.total != nb.total) return na.total > nb.total;
      return na.name < nb.name;
    });
  }
}

}  // namespace exporter
}  // namespace stackstream
