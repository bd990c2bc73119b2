#include "pipeline/thread_names.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace stackstream {
namespace agent {
namespace pipeline {

const std::string& ThreadNames::Get(int32_t tid, bool refresh) {
  auto it = names_.find(tid);
  if (it != names_.end() && !refresh) return it->second;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/comm", static_cast<int>(pid_), tid);
  std::string name;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  bool read_ok = false;
  if (fd >= 0) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n > 0) {
      read_ok = true;
      name.assign(buf, static_cast<size_t>(n));
      while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
    }
  }
  if (it != names_.end()) {
    if (read_ok) it->second = std::move(name);
    return it->second;
  }
  if (names_.size() >= max_entries_) names_.clear();
  return names_.emplace(tid, std::move(name)).first->second;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
