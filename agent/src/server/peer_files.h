// PeerFiles: which module files a connected host may make this agent read.
//
// The node agent runs as root and reads the files that hosts name in their
// module messages. A host names paths, not files, and may lie: it could name
// /etc/shadow, or another user's binary, to have the agent read it (and leak
// its symbols into a profile). A module is only taken when
//   - the host process maps that very file: its (dev, inode), or its path,
//     appears in /proc/PID/maps of the kernel-identified pid (SO_PEERCRED), checked
//     while the process lives and still runs the program of its hello (one
//     that is gone or has exec'd is judged by the next rule alone); and
//   - the file at /proc/PID/root/PATH, opened with the host's credentials
//     (fsuid, fsgid and groups switched on this thread only), is that
//     (dev, inode). Nothing is read from it here: open + fstat.
// The unwinder later opens the file again as the agent and checks the same
// (dev, inode) before reading (ElfFileCache), so a path swapped in between
// is refused too. The vDSO is never a file (the agent uses its own copy).
//
// Thread-safety: not thread-safe; one per ClientSession, used on the
// session's thread (the credential switch is per thread).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>

namespace stackstream {
namespace agent {

class PeerFiles {
 public:
  // "root": "" or "/proc/PID/root" (a host in another mount namespace);
  // "exe": the program the host said it runs (/proc/self/exe in its hello).
  PeerFiles(pid_t pid, uid_t uid, gid_t gid, std::string root, std::string exe);

  // Re-reads /proc/PID/maps (call before judging a batch of new modules).
  void Refresh();

  // Whether the agent may read "path", which the host says is (dev, inode).
  // On false, "*reason" says why (for the log).
  bool Allow(const std::string& path, uint64_t dev, uint64_t inode, std::string* reason);

 private:
  bool OpenAsPeer(const std::string& path, uint64_t* dev, uint64_t* inode, int* err);

  const pid_t pid_;
  const uid_t uid_;
  const gid_t gid_;
  const std::string root_;
  const std::string exe_;
  bool maps_known_ = false;                         // the process was alive at Refresh
  std::set<std::pair<uint64_t, uint64_t>> mapped_;  // (dev, inode) of file mappings
  std::set<std::string> mapped_paths_;              // their paths
};

}  // namespace agent
}  // namespace stackstream
