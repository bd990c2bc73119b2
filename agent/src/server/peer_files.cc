#include "server/peer_files.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {
namespace {

// The supplementary groups of "pid" (from /proc/PID/status), or none.
std::vector<gid_t> PeerGroups(pid_t pid) {
  std::vector<gid_t> groups;
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "re");
  if (f == nullptr) return groups;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, "Groups:", 7) != 0) continue;
    char* p = line + 7;
    for (;;) {
      char* end = nullptr;
      unsigned long g = strtoul(p, &end, 10);
      if (end == p) break;
      groups.push_back(static_cast<gid_t>(g));
      p = end;
      if (groups.size() >= 256) break;
    }
    break;
  }
  fclose(f);
  return groups;
}

// Opens "root" + "path" for reading (as the calling thread's fs
// credentials allow), only if it is a regular file: an O_PATH descriptor is
// checked first, so no device or FIFO is ever opened for real.
int OpenUnder(const std::string& root, const std::string& path) {
  int pfd;
  if (root.empty()) {
    pfd = open(path.c_str(), O_PATH | O_CLOEXEC);
  } else {
    int dirfd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return -1;
    pfd = openat(dirfd, path.c_str() + (path[0] == '/' ? 1 : 0), O_PATH | O_CLOEXEC);
    close(dirfd);
  }
  if (pfd < 0) return -1;
  struct stat st;
  if (fstat(pfd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(pfd);
    errno = EINVAL;
    return -1;
  }
  int fd = open(("/proc/self/fd/" + std::to_string(pfd)).c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  int saved = errno;
  close(pfd);
  errno = saved;
  return fd;
}

}  // namespace

PeerFiles::PeerFiles(pid_t pid, uid_t uid, gid_t gid, std::string root, std::string exe)
    : pid_(pid), uid_(uid), gid_(gid), root_(std::move(root)), exe_(std::move(exe)) {}

void PeerFiles::Refresh() {
  mapped_.clear();
  mapped_paths_.clear();
  maps_known_ = false;
  int fd = open(("/proc/" + std::to_string(pid_) + "/maps").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0 || text.size() > (size_t{64} << 20)) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  // The kernel hands the file out a page at a time: a process that exits
  // meanwhile ends it early. Only a list that reaches the top of the address
  // space (the vDSO sits above the stack) is the whole list.
  if (text.find("[vdso]") == std::string::npos) return;
  bool any = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    unsigned long long start, end, offset, inode;
    unsigned major, minor;
    char perms[8];
    int path_at = 0;
    if (sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &offset,
               &major, &minor, &inode, &path_at) != 7) {
      continue;
    }
    any = true;
    if (inode == 0) continue;
    mapped_.emplace(static_cast<uint64_t>(makedev(major, minor)), inode);
    std::string path = line.substr(static_cast<size_t>(path_at));
    while (!path.empty() && path.back() == ' ') path.pop_back();
    if (!path.empty() && path[0] == '/') mapped_paths_.insert(std::move(path));
  }
  // A zombie's maps are empty, and a process that has exec'd since its hello
  // maps another program: judge such a host's modules by the credential
  // check alone (a race with exit or exec, not a way around it: that check
  // still holds).
  maps_known_ = any && mapped_paths_.count(exe_) != 0;
}

bool PeerFiles::OpenAsPeer(const std::string& path, uint64_t* dev, uint64_t* inode, int* err) {
  const bool switch_creds = uid_ != geteuid();
  std::vector<gid_t> saved_groups;
  uid_t saved_fsuid = 0;
  gid_t saved_fsgid = 0;
  if (switch_creds) {
    int n = getgroups(0, nullptr);
    saved_groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n > 0 && getgroups(n, saved_groups.data()) != n) saved_groups.clear();
    std::vector<gid_t> groups = PeerGroups(pid_);
    // Raw system calls: glibc's setgroups would change every thread of the
    // agent; these change this thread only.
    if (syscall(SYS_setgroups, groups.size(), groups.data()) != 0) {
      *err = errno;
      return false;
    }
    saved_fsgid = static_cast<gid_t>(syscall(SYS_setfsgid, gid_));
    saved_fsuid = static_cast<uid_t>(syscall(SYS_setfsuid, uid_));
  }
  int fd = OpenUnder(root_, path);
  *err = fd < 0 ? errno : 0;
  if (switch_creds) {
    syscall(SYS_setfsuid, saved_fsuid);
    syscall(SYS_setfsgid, saved_fsgid);
    syscall(SYS_setgroups, saved_groups.size(), saved_groups.data());
  }
  if (fd < 0) return false;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (!ok) *err = EINVAL;
  close(fd);
  *dev = static_cast<uint64_t>(st.st_dev);
  *inode = static_cast<uint64_t>(st.st_ino);
  return ok;
}

bool PeerFiles::Allow(const std::string& path, uint64_t dev, uint64_t inode,
                      std::string* reason) {
  if (path == capture::kVdsoPath) return true;
  if (inode == 0) {
    *reason = "no file identity (dev, inode) given";
    return false;
  }
  // By file identity, or by name: on overlayfs the maps show the inode of
  // the underlying file while stat() shows the overlay's.
  if (maps_known_ && mapped_.count({dev, inode}) == 0 && mapped_paths_.count(path) == 0) {
    *reason = "the process maps no such file";
    return false;
  }
  uint64_t got_dev = 0, got_inode = 0;
  int err = 0;
  if (!OpenAsPeer(path, &got_dev, &got_inode, &err)) {
    *reason = std::string("the process cannot open it: ") + strerror(err);
    return false;
  }
  if (got_dev != dev || got_inode != inode) {
    *reason = "the path names another file than the one mapped";
    return false;
  }
  return true;
}

}  // namespace agent
}  // namespace stackstream
