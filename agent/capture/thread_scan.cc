#include "capture/thread_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace stackstream {
namespace agent {

std::vector<pid_t> ListThreadIds() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    out.push_back(static_cast<pid_t>(atoi(e->d_name)));
  }
  closedir(d);
  return out;
}

bool CurrentThreadStackBounds(uint64_t* lo, uint64_t* hi) {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return false;
  void* addr = nullptr;
  size_t size = 0;
  bool ok = pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != nullptr && size > 0;
  pthread_attr_destroy(&attr);
  if (!ok) return false;
  *lo = reinterpret_cast<uint64_t>(addr);
  *hi = *lo + size;
  return true;
}

bool FindMappingContaining(uint64_t addr, uint64_t* lo, uint64_t* hi) {
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return false;
  char line[512];
  bool found = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    unsigned long long a = 0, b = 0;
    char perms[8] = {0};
    if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3) continue;
    if (addr >= a && addr < b) {
      found = perms[0] == 'r' && perms[1] == 'w';
      *lo = a;
      *hi = b;
      break;
    }
  }
  fclose(f);
  return found;
}

bool ThreadBlocksSignal(pid_t tid, int signo, bool* blocked) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/status", static_cast<int>(tid));
  FILE* f = fopen(path, "re");
  if (f == nullptr) return false;
  char line[256];
  bool ok = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, "SigBlk:", 7) == 0) {
      unsigned long long mask = strtoull(line + 7, nullptr, 16);
      *blocked = (mask >> (signo - 1)) & 1;
      ok = true;
      break;
    }
  }
  fclose(f);
  return ok;
}

bool CurrentThreadBlocksSignal(int signo) {
  sigset_t cur;
  if (pthread_sigmask(SIG_BLOCK, nullptr, &cur) != 0) return false;
  return sigismember(&cur, signo) == 1;
}

pid_t CurrentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

}  // namespace agent
}  // namespace stackstream
