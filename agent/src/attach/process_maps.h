// ProcessMaps: the modules of another running process, read from outside
// (/proc/PID/maps and the mapped files), for `stackstream-agent --attach`.
// The in-host capture library describes its modules itself
// (capture/module_scan.cc); a process we attach to cannot, so each module is
// rebuilt from its executable mapping and its ELF file: load bias, PT_LOAD
// segments, .eh_frame_hdr, build-id. Files are opened through the shared
// ElfFileCache, as "root" + path ("/proc/PID/root" when the target lives in
// another mount namespace, so containers work) and checked against the
// mapping's device and inode (the file at that path may have been replaced
// since it was mapped). The vDSO is described from our own copy of the
// kernel's image (the same kernel maps the same vDSO everywhere). Where the
// target's memory may be read (/proc/PID/mem), the build-id note of each
// loaded image must equal its file's.
//
// Thread-safety: not thread-safe; one instance per attach.
#pragma once

#include <elf.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "unwind/module_set.h"

namespace stackstream {
namespace agent {

class ElfFile;
class ElfFileCache;

class ProcessMaps {
 public:
  ProcessMaps(pid_t pid, std::string root, std::shared_ptr<ElfFileCache> files);
  ~ProcessMaps();
  ProcessMaps(const ProcessMaps&) = delete;
  ProcessMaps& operator=(const ProcessMaps&) = delete;

  // Re-reads /proc/PID/maps. Returns false when it cannot be read (the
  // process is gone, or we may not read it); the previous set stays.
  bool Refresh();

  // The modules as of the last Refresh (never null after a successful one).
  const std::shared_ptr<const ModuleSet>& modules() const { return set_; }

  // End of the mapping containing "address" (a thread's stack), or 0.
  uint64_t MappingEnd(uint64_t address) const;

  // Executable file mappings whose file could not be used (missing,
  // replaced, not ELF) as of the last Refresh.
  int unusable() const { return unusable_; }
  int64_t refreshes() const { return refreshes_; }
  // Files whose build-id differs from the loaded image's.
  int64_t build_id_mismatches() const { return build_id_mismatches_; }

 private:
  // (path, dev, inode, start of its executable mapping)
  using Key = std::tuple<std::string, uint64_t, uint64_t, uint64_t>;
  bool Describe(const std::string& path, uint64_t dev, uint64_t inode, uint64_t start,
                uint64_t offset, LoadedModule* out);
  std::string BuildIdInMemory(uint64_t bias, const std::vector<Elf64_Phdr>& phdrs);

  pid_t pid_;
  std::string root_;
  std::shared_ptr<ElfFileCache> files_;
  std::shared_ptr<const ModuleSet> set_;
  std::map<Key, LoadedModule> known_;   // modules described earlier
  std::map<Key, bool> failed_;          // mappings whose file was unusable
  std::vector<std::pair<uint64_t, uint64_t>> mappings_;  // every mapping, sorted
  std::vector<std::shared_ptr<const ElfFile>> held_;     // files of the current set
  int unusable_ = 0;
  int64_t refreshes_ = 0;
  int64_t build_id_mismatches_ = 0;
  int mem_fd_ = -1;  // /proc/PID/mem; -2: not readable
};

}  // namespace agent
}  // namespace stackstream
