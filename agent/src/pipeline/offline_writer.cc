#include "pipeline/offline_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

constexpr int kMaxLinks = 40;  // as the kernel's MAXSYMLINKS
constexpr int kRetryMs = 10;   // FIFO/socket without a reader: retry period
constexpr int64_t kNoDeadline = INT64_MAX;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

std::string ErrnoText(int err) { return strerror(err); }

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// True when the directory holding "path" is procfs: its links are magic
// (/proc/self/fd/1 is a descriptor, not a name to resolve).
bool InProcFs(const std::string& path) {
  struct statfs fs;
  return statfs(DirName(path).c_str(), &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
}

// Where and how a Write() goes.
struct Target {
  bool replace = false;   // true: write a temporary file and rename it to "path"
  std::string path;       // replace: the final name (links resolved); else the path to open
  bool exists = false;    // replace: "path" exists ("st" is valid)
  bool via_proc = false;  // reached through a /proc magic link
  struct stat st = {};    // what is at "path" (following a magic link)
};

Status Resolve(const std::string& path, Target* t) {
  std::string p = path;
  for (int links = 0;; ++links) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      if (errno != ENOENT) return Status::IOError("cannot stat " + p + ": " + ErrnoText(errno));
      t->replace = true;  // nothing there yet (a missing directory fails at create)
      t->path = p;
      return Status::OK();
    }
    const bool magic = S_ISLNK(st.st_mode) && InProcFs(p);
    if (magic) {
      if (stat(p.c_str(), &st) != 0) {
        return Status::IOError("cannot stat " + p + ": " + ErrnoText(errno));
      }
    } else if (S_ISLNK(st.st_mode)) {
      if (links == kMaxLinks) return Status::IOError(path + ": too many symbolic links");
      char buf[PATH_MAX];
      ssize_t n = readlink(p.c_str(), buf, sizeof(buf));
      if (n < 0 || n == static_cast<ssize_t>(sizeof(buf))) {
        return Status::IOError("cannot read link " + p + ": " +
                               ErrnoText(n < 0 ? errno : ENAMETOOLONG));
      }
      std::string target(buf, static_cast<size_t>(n));
      p = target[0] == '/' ? target : DirName(p) + "/" + target;
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      return Status::IOError(p + " is a directory" +
                             (p == path ? "" : " (" + path + " leads there)"));
    }
    t->replace = S_ISREG(st.st_mode) && !magic;
    t->via_proc = magic;
    t->path = p;
    t->exists = true;
    t->st = st;
    return Status::OK();
  }
}

// Writes all of "data" to "fd"; on EAGAIN waits for POLLOUT until
// "deadline_ms" (MonotonicMs()). Returns 0 or an errno value.
int WriteAll(int fd, const std::string& data, int64_t deadline_ms) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return errno;
    int64_t left = deadline_ms - MonotonicMs();
    if (left <= 0) return ETIMEDOUT;
    pollfd pfd = {fd, POLLOUT, 0};
    poll(&pfd, 1, static_cast<int>(left < INT_MAX ? left : INT_MAX));
  }
  return 0;
}

Status WriteViaRename(const Target& t, const std::string& data) {
  std::string tmp = t.path + ".tmp." + std::to_string(getpid());
  // O_EXCL: never follow or reuse whatever has our name; a stale one (a
  // crashed process with our pid) is removed once.
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  int fd = open(tmp.c_str(), flags, 0644);
  if (fd < 0 && errno == EEXIST && unlink(tmp.c_str()) == 0) fd = open(tmp.c_str(), flags, 0644);
  if (fd < 0) return Status::IOError("cannot create " + tmp + ": " + ErrnoText(errno));
  std::string failed;  // what failed, if anything
  int err = 0;
  if (t.exists) {
    // Owner where we may (root; or our own group), then the mode.
    if (fchown(fd, t.st.st_uid, t.st.st_gid) != 0 && fchown(fd, -1, t.st.st_gid) != 0) {
      // Not permitted: the new file keeps our owner.
    }
    if (fchmod(fd, t.st.st_mode & 07777) != 0) {
      err = errno;
      failed = "chmod " + tmp;
    }
  }
  if (err == 0 && (err = WriteAll(fd, data, kNoDeadline)) != 0) failed = "write " + tmp;
  if (close(fd) != 0 && err == 0) {
    err = errno;
    failed = "write " + tmp;
  }
  if (err == 0 && rename(tmp.c_str(), t.path.c_str()) != 0) {
    err = errno;
    failed = "rename " + tmp + " to " + t.path;
  }
  if (err != 0) {
    unlink(tmp.c_str());
    return Status::IOError("cannot " + failed + ": " + ErrnoText(err));
  }
  return Status::OK();
}

// Blocks SIGPIPE for the calling thread while alive; a SIGPIPE our writes
// raised meanwhile is consumed, not delivered.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~ScopedSigpipeBlock() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      timespec zero = {0, 0};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

int ConnectUnix(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Opens (never creates) and writes a device, FIFO, socket or a file behind a
// /proc magic link, within "timeout_ms".
Status WriteDirect(const Target& t, const std::string& data, int timeout_ms) {
  const int64_t deadline = MonotonicMs() + timeout_ms;
  const mode_t type = t.st.st_mode & S_IFMT;
  if (type == S_IFSOCK && t.via_proc) {
    return Status::IOError("cannot open " + t.path +
                           ": a socket behind a descriptor link cannot be reopened");
  }
  // Only a regular file (behind a magic link) is truncated; never a device.
  const int flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (type == S_IFREG ? O_TRUNC : 0);
  int fd = -1;
  while (fd < 0) {
    fd = type == S_IFSOCK ? ConnectUnix(t.path) : open(t.path.c_str(), flags);
    if (fd >= 0 || errno == EINTR) continue;
    int err = errno;
    bool no_reader = (type == S_IFIFO && err == ENXIO) ||
                     (type == S_IFSOCK && (err == ECONNREFUSED || err == EAGAIN));
    if (!no_reader) return Status::IOError("cannot open " + t.path + ": " + ErrnoText(err));
    if (MonotonicMs() >= deadline) {
      return Status::Unavailable("nobody reads " + t.path + " (waited " +
                                 std::to_string(timeout_ms) + " ms)");
    }
    timespec pause = {0, kRetryMs * 1000000L};
    nanosleep(&pause, nullptr);
  }
  int err;
  {
    ScopedSigpipeBlock no_sigpipe;
    err = WriteAll(fd, data, deadline);
  }
  if (close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  if (err == ETIMEDOUT) {
    return Status::Unavailable("reader of " + t.path + " stopped reading (waited " +
                               std::to_string(timeout_ms) + " ms)");
  }
  if (err != 0) return Status::IOError("cannot write " + t.path + ": " + ErrnoText(err));
  return Status::OK();
}

}  // namespace

OfflineWriter::OfflineWriter(std::string path) : OfflineWriter(std::move(path), Options()) {}

OfflineWriter::OfflineWriter(std::string path, Options options)
    : path_(std::move(path)), options_(options), builder_(new ProfileBuilder()) {
  for (auto& b : heap_) b.reset(new ProfileBuilder());
}

std::string OfflineWriter::HeapOutputPath(const std::string& path) {
  for (const char* ext : {".pb.gz", ".pprof", ".pb"}) {
    const size_t n = strlen(ext);
    if (path.size() > n && path.compare(path.size() - n, n, ext) == 0) {
      return path.substr(0, path.size() - n) + ".heap" + ext;
    }
  }
  return path + ".heap";
}

void OfflineWriter::Add(const v1::StackSummary& summary) {
  AddSummaryToProfile(summary, builder_.get());
  for (const v1::SampleSet& set : summary.sample_sets()) {
    for (int t = 0; t < 4; ++t) {
      if (set.type() != kHeapSampleTypes[t]) continue;
      if (IsGaugeSampleType(set.type())) heap_[t].reset(new ProfileBuilder());
      AddSampleSetToProfile(summary, set, heap_[t].get());
      Profile* p = heap_[t]->mutable_profile();
      p->mode = set.type();
      if (IsGaugeSampleType(set.type()) || p->start_unix_nanos == 0) {
        p->start_unix_nanos = summary.start_time_unix_nanos();
      }
      p->end_unix_nanos = summary.end_time_unix_nanos();
    }
  }
  if (start_ns_ == 0 || summary.start_time_unix_nanos() < start_ns_) {
    start_ns_ = summary.start_time_unix_nanos();
  }
  if (summary.end_time_unix_nanos() > end_ns_) end_ns_ = summary.end_time_unix_nanos();
  for (const auto& s : summary.samples()) total_samples_ += s.count();
  AddSummaryCounters(summary.counters(), &counters_);
}

Status OfflineWriter::Write() {
  Profile* profile = builder_->mutable_profile();
  profile->start_unix_nanos = start_ns_;
  profile->end_unix_nanos = end_ns_;
  // What was lost, as the collector's pprof export says it.
  profile->comments = CounterComments(counters_);
  Status status;
  if (options_.cpu) {
    try {
      status = WriteTo(path_, EncodePprofGzip(*profile));
    } catch (const std::exception& e) {
      status = Status::Internal(std::string("encoding pprof: ") + e.what());
    }
  }
  if (options_.heap) {
    Status heap;
    try {
      const Profile* by_type[4];
      for (int t = 0; t < 4; ++t) by_type[t] = heap_[t]->mutable_profile();
      heap_[0]->mutable_profile()->comments = CounterComments(counters_);
      heap = WriteTo(options_.cpu ? HeapOutputPath(path_) : path_, EncodeHeapPprofGzip(by_type));
    } catch (const std::exception& e) {
      heap = Status::Internal(std::string("encoding pprof: ") + e.what());
    }
    if (status.ok()) status = heap;
  }
  if (!status.ok()) ++failures_;
  return status;
}

Status OfflineWriter::WriteTo(const std::string& path, const std::string& data) {
  Status status;
  Target target;
  if (status.ok()) status = Resolve(path, &target);
  if (status.ok()) {
    status = target.replace ? WriteViaRename(target, data)
                            : WriteDirect(target, data, options_.direct_timeout_ms);
  }
  return status;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
