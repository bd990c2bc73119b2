// CallTree: the stacks of a Profile merged into a tree of function names,
// root first, under one synthetic root named "total". The flame-graph
// exporters (Grafana rows, Pyroscope levels) are walks over it.
// Not thread-safe to build; const methods may be called from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/profile.h"

namespace stackstream {
namespace exporter {

// A call-tree node's identity while a tree is built: (parent index, name).
struct ChildKey {
  uint32_t parent;
  std::string name;
  bool operator==(const ChildKey& o) const { return parent == o.parent && name == o.name; }
};
struct ChildKeyHash {
  size_t operator()(const ChildKey& k) const {
    return std::hash<std::string>()(k.name) * 31 + k.parent;
  }
};

class CallTree {
 public:
  struct Node {
    std::string name;
    int64_t total = 0;  // samples in this node and below
    int64_t self = 0;   // samples whose leaf is this node
    std::vector<uint32_t> children;  // indexes into nodes()
  };

  // How children are ordered. kByValue: total descending, ties by name (the
  // order of formats.md's worked example). kByName: name ascending.
  enum class Order { kByValue, kByName };

  // Builds the tree of "profile" (truncated stacks hang under "[truncated]").
  static CallTree FromProfile(const Profile& profile, Order order = Order::kByValue);

  // nodes()[0] is the root "total".
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& root() const { return nodes_[0]; }

 private:
  CallTree() = default;
  void Sort(Order order);
  std::vector<Node> nodes_;
};

}  // namespace exporter
}  // namespace stackstream
