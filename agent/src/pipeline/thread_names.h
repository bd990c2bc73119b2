// ThreadNames: thread id -> name for one host process, read from
// /proc/PID/task/TID/comm and cached per tid (bounded). The name of a thread
// that has exited (or of a host that has exited) stays known if it was read
// while the thread lived.
//
// Not thread-safe: used by the session's thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>

namespace stackstream {
namespace agent {
namespace pipeline {

class ThreadNames {
 public:
  // "pid": the host process whose threads are named.
  explicit ThreadNames(pid_t pid, size_t max_entries = 4096)
      : pid_(pid), max_entries_(max_entries) {}

  // The thread's name ("" when unknown). Re-reads the name when "refresh" is
  // set and the thread still exists.
  const std::string& Get(int32_t tid, bool refresh = false);

 private:
  pid_t pid_;
  size_t max_entries_;
  std::unordered_map<int32_t, std::string> names_;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
