#include "capture.h"

#include <libunwind.h>
#include <pthread.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "unwind/snapshot_regs.h"

namespace stackstream {
namespace agent {
namespace testing {

uint64_t ThreadStackEnd() {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
  void* addr = nullptr;
  size_t size = 0;
  pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  return reinterpret_cast<uint64_t>(addr) + size;
}

bool CopyOwnMemory(uint64_t addr, void* out, size_t len) {
  struct iovec local = {out, len};
  struct iovec remote = {reinterpret_cast<void*>(addr), len};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

__attribute__((noinline)) void CaptureHere(CapturedStack* out, size_t max_stack) {
  ucontext_t uc;
  getcontext(&uc);
  void* bt[1024];
  int n = unw_backtrace(bt, 1024);
  SnapshotRegsFromUcontext(&uc, out->regs);
  uint64_t sp = out->regs[kRegRsp];
  uint64_t end = ThreadStackEnd();
  size_t size = end > sp ? end - sp : 0;
  if (size > max_stack) size = max_stack;
  out->stack_start = sp;
  out->stack.resize(size);
  if (!CopyOwnMemory(sp, out->stack.data(), size)) out->stack.clear();
  out->backtrace.clear();
  for (int i = 0; i < n; ++i) out->backtrace.push_back(reinterpret_cast<uint64_t>(bt[i]));
  asm volatile("" ::: "memory");
}

}  // namespace testing
}  // namespace agent
}  // namespace stackstream
