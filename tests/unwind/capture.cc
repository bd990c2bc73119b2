#include "capture.h"

#include <libunwind.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "capture/module_scan.h"
#include "capture/ucontext_regs.h"

namespace stackstream {
namespace agent {
namespace testing {

void RegsFromUcontext(const ucontext_t* uc, uint64_t* regs) {
  capture::RegsFromUcontext(uc, regs);
}

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
  RegsFromUcontext(&uc, out->regs);
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

std::string ScannedModule::Raw() const {
  capture::ModuleMessage m = message;
  m.path_bytes = static_cast<uint32_t>(path.size() + 1);
  m.header.size = static_cast<uint32_t>(sizeof m + path.size() + 1);
  std::string raw(reinterpret_cast<const char*>(&m), sizeof m);
  raw.append(path);
  raw.push_back('\0');
  return raw;
}

namespace {
void Collect(const capture::ModuleMessage& message, const char* path, void* arg) {
  auto* out = static_cast<std::vector<ScannedModule>*>(arg);
  out->push_back(ScannedModule{message, path});
}
}  // namespace

std::vector<ScannedModule> ScanModules() {
  std::vector<ScannedModule> out;
  capture::ScanModules(1, &Collect, &out);
  return out;
}

std::vector<std::string> RawMessages(const std::vector<ScannedModule>& modules) {
  std::vector<std::string> raw;
  for (const ScannedModule& m : modules) raw.push_back(m.Raw());
  return raw;
}

std::shared_ptr<const ModuleSet> ScanModuleSet(const std::string& root) {
  int rejected = -1;
  auto set = ModuleSet::FromMessages(RawMessages(ScanModules()), root, &rejected);
  return rejected == 0 ? set : nullptr;
}

const ScannedModule* FindModule(const std::vector<ScannedModule>& modules, const std::string& path) {
  for (const ScannedModule& m : modules) {
    if (m.path == path) return &m;
  }
  return nullptr;
}

}  // namespace testing
}  // namespace agent
}  // namespace stackstream
