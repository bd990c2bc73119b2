#include "unwind/elf_file_cache.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>

namespace stackstream {
namespace agent {
namespace unwind_internal {

struct PageCacheCore {
  using Key = std::pair<uint64_t, uint64_t>;  // (file id, page index)
  struct Entry {
    std::shared_ptr<const ElfPage> page;
    std::list<Key>::iterator lru;
  };
  explicit PageCacheCore(size_t max) : max_bytes(max) {}

  std::mutex mu;
  const size_t max_bytes;
  size_t bytes = 0;
  int64_t reads = 0;
  int64_t read_failures = 0;
  uint64_t next_id = 1;
  std::map<Key, Entry> pages;
  std::list<Key> lru;  // front: most recently used
};

}  // namespace unwind_internal

namespace {

using unwind_internal::PageCacheCore;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

bool PreadAll(int fd, void* out, size_t len, uint64_t offset) {
  auto* dst = static_cast<uint8_t*>(out);
  while (len > 0) {
    ssize_t n = pread(fd, dst, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    dst += n;
    offset += static_cast<uint64_t>(n);
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool HasDotDot(const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find("..", pos)) != std::string::npos) {
    bool starts = pos == 0 || path[pos - 1] == '/';
    bool ends = pos + 2 == path.size() || path[pos + 2] == '/';
    if (starts && ends) return true;
    pos += 2;
  }
  return false;
}

// Opens "path" as seen from "root" ("" = our own root).
int OpenInRoot(const std::string& root, const std::string& path) {
  const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  if (root.empty()) return open(path.c_str(), flags);
  int dirfd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return -1;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) {
    // Kernel older than 5.6: plain path walk, without ".." (absolute
    // symlinks inside the root still resolve against ours).
    fd = HasDotDot(path) ? -1 : openat(dirfd, path.c_str() + (path[0] == '/' ? 1 : 0), flags);
  }
  close(dirfd);
  return fd;
}

// Reads [offset, offset + len) of a file or an image: pread, or a copy.
struct Reader {
  int fd = -1;
  const uint8_t* image = nullptr;
  uint64_t image_size = 0;
  bool Read(void* out, size_t len, uint64_t offset) const {
    if (image == nullptr) return PreadAll(fd, out, len, offset);
    if (offset > image_size || len > image_size - offset) return false;
    memcpy(out, image + offset, len);
    return true;
  }
};

// Checks the ELF header (64-bit little-endian) and reads the GNU build-id
// from the PT_NOTE segments. False when the file is not such an ELF file.
bool ParseElf(const Reader& in, uint64_t file_size, std::string* build_id) {
  build_id->clear();
  Elf64_Ehdr eh;
  if (file_size < sizeof eh || !in.Read(&eh, sizeof eh, 0)) return false;
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB) {
    return false;
  }
  if (eh.e_phnum == 0) return true;
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 4096 || eh.e_phoff > file_size ||
      uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > file_size - eh.e_phoff) {
    return true;  // an ELF file, but no program headers we can read: no build-id
  }
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  if (!in.Read(phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr), eh.e_phoff)) return false;
  std::vector<uint8_t> notes;
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_type != PT_NOTE || ph.p_filesz < 12 || ph.p_filesz > (1 << 20) ||
        ph.p_offset > file_size || ph.p_filesz > file_size - ph.p_offset) {
      continue;
    }
    notes.resize(ph.p_filesz);
    if (!in.Read(notes.data(), notes.size(), ph.p_offset)) continue;
    const uint64_t align = ph.p_align == 8 ? 8 : 4;
    const uint64_t len = notes.size();
    uint64_t off = 0;
    while (off + 12 <= len) {
      uint32_t hdr[3];
      memcpy(hdr, notes.data() + off, sizeof hdr);
      const uint64_t namesz = hdr[0], descsz = hdr[1], type = hdr[2];
      const uint64_t name_off = off + 12;
      const uint64_t desc_off = name_off + ((namesz + align - 1) & ~(align - 1));
      const uint64_t next = desc_off + ((descsz + align - 1) & ~(align - 1));
      if (desc_off > len || descsz > len - desc_off) break;
      if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(notes.data() + name_off, "GNU", 4) == 0) {
        size_t n = std::min<uint64_t>(descsz, capture::kMaxBuildIdBytes);
        *build_id = HexString(notes.data() + desc_off, n);
        return true;
      }
      if (next <= off) break;
      off = next;
    }
  }
  return true;
}

// A copy of this process's vDSO image (the kernel's; the same in every
// process on the machine), or empty.
std::vector<uint8_t> OwnVdsoImage() {
  const auto* base = reinterpret_cast<const uint8_t*>(getauxval(AT_SYSINFO_EHDR));
  if (base == nullptr) return {};
  Elf64_Ehdr eh;
  memcpy(&eh, base, sizeof eh);
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 64 ||
      eh.e_phoff > 65536) {
    return {};
  }
  // The image ends with its last PT_LOAD byte or its section headers; it is
  // mapped in whole pages.
  uint64_t end = eh.e_phoff + uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_shoff != 0 && eh.e_shoff < (1 << 20)) {
    end = std::max<uint64_t>(end, eh.e_shoff + uint64_t{eh.e_shnum} * eh.e_shentsize);
  }
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    memcpy(&ph, base + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD && ph.p_filesz < (1 << 20)) {
      end = std::max<uint64_t>(end, ph.p_offset + ph.p_filesz);
    }
  }
  if (end > (1 << 20)) return {};
  end = (end + kElfPageSize - 1) & ~uint64_t{kElfPageSize - 1};
  return std::vector<uint8_t>(base, base + end);
}

}  // namespace

// ---- ElfFile ----

ElfFile::~ElfFile() {
  if (fd_ >= 0) close(fd_);
  if (core_ == nullptr) return;
  std::lock_guard<std::mutex> lock(core_->mu);
  auto it = core_->pages.lower_bound({id_, 0});
  while (it != core_->pages.end() && it->first.first == id_) {
    core_->lru.erase(it->second.lru);
    core_->bytes -= sizeof(ElfPage);
    it = core_->pages.erase(it);
  }
}

std::shared_ptr<const ElfPage> ElfFile::Page(uint64_t index) const {
  if (index >= (size_ + kElfPageSize - 1) / kElfPageSize) return nullptr;
  const PageCacheCore::Key key{id_, index};
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    auto it = core_->pages.find(key);
    if (it != core_->pages.end()) {
      core_->lru.splice(core_->lru.begin(), core_->lru, it->second.lru);
      return it->second.page;
    }
  }
  auto page = std::make_shared<ElfPage>();
  const uint64_t offset = index * kElfPageSize;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(kElfPageSize, size_ - offset));
  size_t got = 0;
  if (!image_.empty()) {  // an image in memory (the vDSO)
    memcpy(page->data, image_.data() + offset, want);
    got = want;
  }
  while (got < want) {
    ssize_t n = pread(fd_, page->data + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // truncated since we opened it, or an I/O error
    got += static_cast<size_t>(n);
  }
  if (got < want) {
    std::lock_guard<std::mutex> lock(core_->mu);
    ++core_->read_failures;
  }
  if (got == 0) return nullptr;
  page->size = static_cast<uint32_t>(got);
  std::lock_guard<std::mutex> lock(core_->mu);
  ++core_->reads;
  if (core_->max_bytes < sizeof(ElfPage)) return page;  // caching disabled
  auto it = core_->pages.find(key);
  if (it != core_->pages.end()) return it->second.page;  // another thread was faster
  core_->lru.push_front(key);
  core_->pages.emplace(key, PageCacheCore::Entry{page, core_->lru.begin()});
  core_->bytes += sizeof(ElfPage);
  while (core_->bytes > core_->max_bytes && !core_->lru.empty()) {
    auto victim = core_->pages.find(core_->lru.back());
    core_->lru.pop_back();
    if (victim != core_->pages.end()) {
      core_->pages.erase(victim);
      core_->bytes -= sizeof(ElfPage);
    }
  }
  return page;
}

bool ElfFile::Read(uint64_t offset, void* out, size_t len) const {
  auto* dst = static_cast<uint8_t*>(out);
  if (offset > size_ || len > size_ - offset) return false;
  while (len > 0) {
    std::shared_ptr<const ElfPage> page = Page(offset / kElfPageSize);
    const size_t in_page = static_cast<size_t>(offset % kElfPageSize);
    if (page == nullptr || in_page >= page->size) return false;
    const size_t n = std::min<size_t>(len, page->size - in_page);
    memcpy(dst, page->data + in_page, n);
    dst += n;
    offset += n;
    len -= n;
  }
  return true;
}

// ---- ElfFileCache ----

ElfFileCache::ElfFileCache() : ElfFileCache(Options()) {}

ElfFileCache::ElfFileCache(Options options)
    : options_(options), core_(std::make_shared<PageCacheCore>(options.max_cached_bytes)) {}

ElfFileCache::~ElfFileCache() = default;

std::string ElfFileCache::ReadBuildId(int fd, uint64_t file_size) {
  std::string id;
  Reader in;
  in.fd = fd;
  ParseElf(in, file_size, &id);
  return id;
}

bool ElfFileCache::Matches(const ElfFile& file, const LoadedModule& module, bool count) {
  if (!module.build_id.empty() && file.build_id() != module.build_id) {
    if (count) ++build_id_mismatches_;
    return false;
  }
  if (module.inode != 0 && (file.inode() != module.inode || file.dev() != module.dev)) {
    if (count) ++inode_mismatches_;
    return false;
  }
  return true;
}

std::shared_ptr<const ElfFile> ElfFileCache::Vdso(const LoadedModule& module) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!vdso_tried_) {
    vdso_tried_ = true;
    std::vector<uint8_t> image = OwnVdsoImage();
    std::string build_id;
    Reader in;
    in.image = image.data();
    in.image_size = image.size();
    if (!image.empty() && ParseElf(in, image.size(), &build_id)) {
      std::shared_ptr<ElfFile> f(new ElfFile());
      f->core_ = core_;
      {
        std::lock_guard<std::mutex> core_lock(core_->mu);
        f->id_ = core_->next_id++;
      }
      f->size_ = image.size();
      f->image_ = std::move(image);
      f->build_id_ = std::move(build_id);
      f->opened_path_ = capture::kVdsoPath;
      vdso_ = f;
    } else {
      ++open_failures_;
    }
  }
  if (vdso_ == nullptr) return nullptr;
  // Another kernel's vDSO (a core from elsewhere, a 32-bit host): not ours.
  if (!module.build_id.empty() && module.build_id != vdso_->build_id()) {
    ++build_id_mismatches_;
    return nullptr;
  }
  return vdso_;
}

std::shared_ptr<const ElfFile> ElfFileCache::Get(const LoadedModule& module,
                                                 const std::string& root) {
  if (module.path == capture::kVdsoPath) return Vdso(module);
  std::string key;
  key.reserve(root.size() + module.path.size() + module.build_id.size() + 48);
  key.append(root).push_back('\0');
  key.append(module.path).push_back('\0');
  key.append(module.build_id).push_back('\0');
  key.append(std::to_string(module.dev)).push_back(':');
  key.append(std::to_string(module.inode));

  std::unique_lock<std::mutex> lock(mu_);
  auto it = lookups_.find(key);
  if (it != lookups_.end()) {
    if (it->second.failed_at_ms >= 0) {
      if (MonotonicMs() - it->second.failed_at_ms < options_.retry_after_ms) return nullptr;
    } else if (std::shared_ptr<const ElfFile> f = it->second.file.lock()) {
      f->last_used_ = ++clock_;
      return f;
    }
    lookups_.erase(it);
  }
  std::shared_ptr<const ElfFile> file = OpenLocked(module, root, &lock);
  if (lookups_.size() >= 8 * options_.max_files + 1024) {
    // Forget failures and files nobody holds any more; then, if need be, all.
    for (auto l = lookups_.begin(); l != lookups_.end();) {
      l = l->second.file.expired() ? lookups_.erase(l) : std::next(l);
    }
    if (lookups_.size() >= 8 * options_.max_files + 1024) lookups_.clear();
  }
  Lookup& l = lookups_[key];
  l.file = file;
  l.failed_at_ms = file == nullptr ? MonotonicMs() : -1;
  return file;
}

std::shared_ptr<const ElfFile> ElfFileCache::OpenLocked(const LoadedModule& module,
                                                        const std::string& root,
                                                        std::unique_lock<std::mutex>* lock) {
  // The file system work happens without the lock.
  lock->unlock();
  int fd = OpenInRoot(root, module.path);
  struct stat st;
  std::string build_id;
  bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  // Another file than the host mapped (the path was swapped): read nothing.
  const bool other_file = ok && module.inode != 0 &&
                          (static_cast<uint64_t>(st.st_ino) != module.inode ||
                           static_cast<uint64_t>(st.st_dev) != module.dev);
  ok = ok && !other_file && ParseElf(Reader{fd}, static_cast<uint64_t>(st.st_size), &build_id);
  lock->lock();
  if (other_file) ++inode_mismatches_;
  if (!ok) {
    if (fd >= 0) close(fd);
    ++open_failures_;
    return nullptr;
  }
  const auto identity = std::make_pair(static_cast<uint64_t>(st.st_dev),
                                       static_cast<uint64_t>(st.st_ino));
  auto existing = files_.find(identity);
  // While we hold a file open its inode cannot be reused: same (dev, ino),
  // same file (seen through another root or path).
  if (existing != files_.end() && existing->second->size() == static_cast<uint64_t>(st.st_size) &&
      existing->second->build_id() == build_id) {
    close(fd);
    std::shared_ptr<const ElfFile> f = existing->second;
    if (!Matches(*f, module, true)) return nullptr;
    f->last_used_ = ++clock_;
    return f;
  }
  std::shared_ptr<ElfFile> f(new ElfFile());
  f->core_ = core_;
  {
    std::lock_guard<std::mutex> core_lock(core_->mu);
    f->id_ = core_->next_id++;
  }
  f->fd_ = fd;
  f->size_ = static_cast<uint64_t>(st.st_size);
  f->dev_ = identity.first;
  f->inode_ = identity.second;
  f->build_id_ = std::move(build_id);
  f->opened_path_ = root + module.path;
  f->last_used_ = ++clock_;
  ++opens_;
  if (!Matches(*f, module, true)) return nullptr;  // closes it
  files_[identity] = f;
  EvictLocked();
  return f;
}

void ElfFileCache::EvictLocked() {
  while (files_.size() > options_.max_files) {
    auto oldest = files_.begin();
    for (auto it = files_.begin(); it != files_.end(); ++it) {
      if (it->second->last_used_ < oldest->second->last_used_) oldest = it;
    }
    files_.erase(oldest);  // users keep theirs open until they let go
  }
}

std::vector<std::shared_ptr<const ElfFile>> ElfFileCache::OpenAll(const ModuleSet& modules) {
  std::vector<std::shared_ptr<const ElfFile>> out;
  out.reserve(modules.modules().size());
  for (const LoadedModule& m : modules.modules()) {
    if (std::shared_ptr<const ElfFile> f = Get(m, modules.root())) out.push_back(std::move(f));
  }
  return out;
}

int64_t ElfFileCache::build_id_mismatches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return build_id_mismatches_;
}
int64_t ElfFileCache::inode_mismatches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inode_mismatches_;
}
int64_t ElfFileCache::open_failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_failures_;
}
int64_t ElfFileCache::opens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return opens_;
}
size_t ElfFileCache::open_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.size();
}
size_t ElfFileCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->bytes;
}
int64_t ElfFileCache::read_failures() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->read_failures;
}
int64_t ElfFileCache::page_reads() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->reads;
}

}  // namespace agent
}  // namespace stackstream
