// ElfFileCache: the module files of host processes, opened once and shared
// by every client (hundreds of forked processes with the same libraries read
// each file once), for RemoteUnwinder (.eh_frame_hdr / .eh_frame) and the
// Symbolizer.
//
// A module's file is opened as root + path (with openat2(RESOLVE_IN_ROOT)
// when there is a root, so that ".." and absolute symlinks cannot leave the
// host's root), read-only, O_CLOEXEC, regular files only (a FIFO cannot block
// us). It is the module's file only when it is an ELF file whose
// NT_GNU_BUILD_ID equals the module's build-id (when the module has one) and
// whose st_dev/st_ino equal the module's (when the host knew them);
// otherwise it is unusable for that module and the mismatch is counted.
//
// Bytes are read with pread into a shared, bounded page cache: never through
// mmap, so a file that is truncated while we use it (or is hostile) makes a
// read fail, never fault (SIGBUS). Every read is bounds-checked against the
// file.
//
// Bounds: at most Options::max_files files are kept open by the cache (files
// still held by a user stay open until released) and at most
// Options::max_cached_bytes of pages are cached (least recently used first
// out). A failed lookup is remembered for Options::retry_after_ms.
//
// Thread-safety: thread-safe (ElfFileCache and ElfFile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "unwind/module_set.h"

namespace stackstream {
namespace agent {

constexpr size_t kElfPageSize = 4096;

struct ElfPage {
  uint32_t size = 0;  // valid bytes (< kElfPageSize only for the file's last page)
  uint8_t data[kElfPageSize];
};

namespace unwind_internal {
struct PageCacheCore;
}

// One opened, identified module file. Keeps its descriptor open while it lives.
class ElfFile {
 public:
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  // Copies [offset, offset + len) of the file into "out". False when any of
  // it lies past the end of the file or cannot be read.
  bool Read(uint64_t offset, void* out, size_t len) const;
  // Page "index" (file bytes [index * kElfPageSize, ...)) through the shared
  // page cache. Null past the end of the file or on a read error.
  std::shared_ptr<const ElfPage> Page(uint64_t index) const;

  uint64_t id() const { return id_; }     // unique per ElfFile object in this process
  int fd() const { return fd_; }          // owned by the ElfFile: dup() it to keep it;
                                          // -1 for an image in memory
  // The image of a file that has no descriptor (the vDSO), else empty.
  const std::vector<uint8_t>& image() const { return image_; }
  uint64_t size() const { return size_; } // at open
  uint64_t dev() const { return dev_; }
  uint64_t inode() const { return inode_; }
  const std::string& build_id() const { return build_id_; }  // lower-case hex, "" when none
  const std::string& opened_path() const { return opened_path_; }

 private:
  friend class ElfFileCache;
  ElfFile() = default;
  std::shared_ptr<unwind_internal::PageCacheCore> core_;
  uint64_t id_ = 0;
  int fd_ = -1;
  std::vector<uint8_t> image_;
  uint64_t size_ = 0, dev_ = 0, inode_ = 0;
  std::string build_id_;
  std::string opened_path_;
  mutable uint64_t last_used_ = 0;  // guarded by ElfFileCache::mu_
};

class ElfFileCache {
 public:
  struct Options {
    size_t max_files = 256;
    size_t max_cached_bytes = size_t{32} << 20;
    int64_t retry_after_ms = 10000;  // a file that could not be used is retried after this
  };
  ElfFileCache();
  explicit ElfFileCache(Options options);
  ~ElfFileCache();
  ElfFileCache(const ElfFileCache&) = delete;
  ElfFileCache& operator=(const ElfFileCache&) = delete;

  // The verified file of "module" as seen from "root" (see above), or null.
  // The vDSO (path capture::kVdsoPath) has no file: it is this process's
  // own vDSO image (the kernel's, the same for every process on the
  // machine), used when its build-id matches the module's.
  std::shared_ptr<const ElfFile> Get(const LoadedModule& module, const std::string& root);

  // Opens the files of every module of "modules" now and returns them. A
  // session keeps the result with the set while the host lives: a host in
  // another mount namespace ("/proc/PID/root") takes its root with it when
  // it exits, and a held file stays usable (Get finds it) after that.
  std::vector<std::shared_ptr<const ElfFile>> OpenAll(const ModuleSet& modules);

  // Module files whose build-id differs from the module's (per open attempt).
  int64_t build_id_mismatches() const;
  // Module files whose st_dev/st_ino differ from the module's.
  int64_t inode_mismatches() const;
  // Files that could not be opened or are not (64-bit, little-endian) ELF.
  int64_t open_failures() const;
  // Files opened (open() calls that gave a usable ELF file).
  int64_t opens() const;
  size_t open_files() const;
  size_t cached_bytes() const;
  // Pages read from files (page cache misses).
  int64_t page_reads() const;
  // Page reads that failed (the file shrank since it was opened, I/O error).
  int64_t read_failures() const;

  // Reads the GNU build-id of an open ELF file ("" when none / not ELF).
  // Exposed for tests.
  static std::string ReadBuildId(int fd, uint64_t file_size);

 private:
  struct Lookup {
    std::weak_ptr<const ElfFile> file;
    int64_t failed_at_ms = -1;  // >= 0: unusable since then
  };
  std::shared_ptr<const ElfFile> OpenLocked(const LoadedModule& module, const std::string& root,
                                            std::unique_lock<std::mutex>* lock);
  bool Matches(const ElfFile& file, const LoadedModule& module, bool count);
  std::shared_ptr<const ElfFile> Vdso(const LoadedModule& module);
  void EvictLocked();

  const Options options_;
  std::shared_ptr<unwind_internal::PageCacheCore> core_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Lookup> lookups_;  // root, path, build-id, dev, inode
  std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<const ElfFile>> files_;  // (dev, ino)
  std::shared_ptr<const ElfFile> vdso_;
  bool vdso_tried_ = false;
  uint64_t clock_ = 0;
  int64_t build_id_mismatches_ = 0, inode_mismatches_ = 0, open_failures_ = 0, opens_ = 0;
};

}  // namespace agent
}  // namespace stackstream
