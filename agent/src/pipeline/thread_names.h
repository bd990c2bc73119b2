// ThreadNames: thread id -> name, read from /proc/self/task/TID/comm and
// cached per tid (bounded). The name of a thread that has exited stays
// known if it was read while the thread lived.
//
// Not thread-safe: used by the drain thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

namespace stackstream {
namespace agent {
namespace pipeline {

class ThreadNames {
 public:
  explicit ThreadNames(size_t max_entries = 4096) : max_entries_(max_entries) {}

  // The thread's name ("" when unknown). Re-reads the name when "refresh" is
  // set and the thread still exists.
  const std::string& Get(int32_t tid, bool refresh = false);

 private:
  size_t max_entries_;
  std::unordered_map<int32_t, std::string> names_;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
