// OfflineWriter against every kind of target (issue 16): a regular file or
// nothing is replaced atomically, keeping mode and owner; a symlink's target
// is written and the link stays; devices, FIFOs, sockets and /proc fd links
// are written in place, never replaced; a FIFO without a reader or a stalled
// reader cannot hang the writer; directories and missing directories fail,
// are counted and left alone. Each test works in its own temporary directory
// (a private null device made with mknod, never the machine's /dev/null).
#include "pipeline/offline_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "format/validate.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

namespace fs = std::filesystem;

// One valid summary (two functions, one stack, 7 samples), built by hand so
// the test depends on nothing but the summary format.
const v1::StackSummary& TestSummary() {
  static const v1::StackSummary* summary = [] {
    auto* s = new v1::StackSummary();
    s->set_schema_version(1);
    s->mutable_process()->set_service("offline-writer-test");
    s->mutable_process()->set_agent_instance_id("0123456789abcdef0123456789abcdef");
    s->mutable_process()->set_pid(getpid());
    s->set_start_time_unix_nanos(1700000000000000000LL);
    s->set_end_time_unix_nanos(1700000001000000000LL);
    s->set_mode(v1::SAMPLING_MODE_CPU);
    s->set_period_nanos(10000000);
    for (const char* str : {"", "/usr/bin/fixture", "fixture_hot", "fixture.cc", "main"}) {
      s->add_string_table(str);
    }
    v1::Mapping* m = s->add_mappings();
    m->set_memory_start(0x400000);
    m->set_memory_limit(0x500000);
    m->set_path_strindex(1);
    m->set_build_id("0123abcd");
    for (uint32_t name : {2u, 4u}) {
      v1::Function* f = s->add_functions();
      f->set_name_strindex(name);
      f->set_filename_strindex(3);
      f->set_start_line(10 * name);
    }
    for (uint32_t i = 0; i < 2; ++i) {
      v1::Location* loc = s->add_locations();
      loc->set_mapping_index(0);
      loc->set_file_offset(0x1000 * (i + 1));
      loc->set_address(0x400000 + 0x1000 * (i + 1));
      v1::Line* line = loc->add_lines();
      line->set_function_index(i);
      line->set_line(12 + i);
    }
    v1::Stack* stack = s->add_stacks();
    stack->add_location_indexes(0);  // leaf first
    stack->add_location_indexes(1);
    v1::Sample* sample = s->add_samples();
    sample->set_stack_index(0);
    sample->set_count(7);
    return s;
  }();
  return *summary;
}

// The bytes a Write() of TestSummary() must produce (the project's encoder).
const std::string& Expected() {
  static const std::string* bytes = [] {
    ProfileBuilder pb;
    AddSummaryToProfile(TestSummary(), &pb);
    Profile* p = pb.mutable_profile();
    p->start_unix_nanos = TestSummary().start_time_unix_nanos();
    p->end_unix_nanos = TestSummary().end_time_unix_nanos();
    return new std::string(EncodePprofGzip(*p));
  }();
  return *bytes;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadFd(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

mode_t TypeOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? (st.st_mode & S_IFMT) : 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

class OfflineWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status valid = ValidateSummary(TestSummary());
    ASSERT_TRUE(valid.ok()) << valid.ToString();
    std::string tmpl = ::testing::TempDir() + "/offline-writer-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(&tmpl[0]));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // A writer for "path" holding TestSummary().
  std::unique_ptr<OfflineWriter> NewWriter(const std::string& path, int timeout_ms = 1000) {
    OfflineWriter::Options options;
    options.direct_timeout_ms = timeout_ms;
    auto w = std::make_unique<OfflineWriter>(path, options);
    w->Add(TestSummary());
    return w;
  }

  // Names in "dir" (recursively) that look like our temporary files.
  static std::vector<std::string> Leftovers(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.path().filename().string().find(".tmp.") != std::string::npos) {
        out.push_back(e.path());
      }
    }
    return out;
  }

  std::string dir_;
};

TEST_F(OfflineWriterTest, EncodedProfileIsNotTrivial) {
  EXPECT_EQ(7, TestSummary().samples(0).count());
  ASSERT_GT(Expected().size(), 20u);
  EXPECT_EQ('\x1f', Expected()[0]);
  EXPECT_EQ('\x8b', Expected()[1]);
}

TEST_F(OfflineWriterTest, MissingFileIsCreated) {
  std::string path = Path("new.pb.gz");
  auto w = NewWriter(path);
  ASSERT_TRUE(w->Write().ok());
  EXPECT_EQ(S_IFREG, TypeOf(path));
  mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(0644 & ~mask, ModeOf(path));
  EXPECT_EQ(Expected(), ReadAll(path));
  EXPECT_EQ(0, w->failures());
  EXPECT_TRUE(Leftovers(dir_).empty());
}

TEST_F(OfflineWriterTest, ExistingFileIsReplacedKeepingModeAndOwner) {
  std::string path = Path("old.pb.gz");
  std::ofstream(path) << "old content, longer than nothing";
  ASSERT_EQ(0, chmod(path.c_str(), 0600));
  if (geteuid() == 0) {
    ASSERT_EQ(0, chown(path.c_str(), 4321, 4322));
  }
  struct stat before;
  ASSERT_EQ(0, stat(path.c_str(), &before));
  auto w = NewWriter(path);
  ASSERT_TRUE(w->Write().ok());
  struct stat after;
  ASSERT_EQ(0, stat(path.c_str(), &after));
  EXPECT_NE(before.st_ino, after.st_ino) << "replaced by rename (atomic)";
  ASSERT_TRUE(w->Write().ok());
  ASSERT_EQ(0, stat(path.c_str(), &after));
  EXPECT_TRUE(S_ISREG(after.st_mode));
  EXPECT_EQ(0600u, after.st_mode & 07777);
  EXPECT_EQ(before.st_uid, after.st_uid);
  EXPECT_EQ(before.st_gid, after.st_gid);
  EXPECT_EQ(Expected(), ReadAll(path));
  EXPECT_TRUE(Leftovers(dir_).empty());
}

TEST_F(OfflineWriterTest, StaleTemporaryFileOfOurPidIsReplaced) {
  std::string path = Path("p.pb.gz");
  std::string stale = path + ".tmp." + std::to_string(getpid());
  std::string victim = Path("victim");
  std::ofstream(victim) << "keep";
  ASSERT_EQ(0, symlink(victim.c_str(), stale.c_str()));  // never followed
  ASSERT_TRUE(NewWriter(path)->Write().ok());
  EXPECT_EQ(Expected(), ReadAll(path));
  EXPECT_EQ("keep", ReadAll(victim));
  EXPECT_EQ(0u, TypeOf(stale));
}

TEST_F(OfflineWriterTest, SymlinkToFileWritesTheTargetAndStaysALink) {
  ASSERT_EQ(0, mkdir(Path("data").c_str(), 0755));
  std::string target = Path("data/real.pb.gz");
  std::ofstream(target) << "old";
  ASSERT_EQ(0, chmod(target.c_str(), 0640));
  std::string link = Path("out.pb.gz");
  ASSERT_EQ(0, symlink("data/real.pb.gz", link.c_str()));  // relative
  auto w = NewWriter(link);
  ASSERT_TRUE(w->Write().ok());
  EXPECT_EQ(S_IFLNK, TypeOf(link));
  EXPECT_EQ("data/real.pb.gz", fs::read_symlink(link).string());
  EXPECT_EQ(S_IFREG, TypeOf(target));
  EXPECT_EQ(0640u, ModeOf(target));
  EXPECT_EQ(Expected(), ReadAll(target));
  EXPECT_TRUE(Leftovers(dir_).empty());
}

TEST_F(OfflineWriterTest, SymlinkChainToMissingTargetCreatesIt) {
  ASSERT_EQ(0, mkdir(Path("sub").c_str(), 0755));
  // a -> DIR/sub/b (absolute) -> c (relative to sub/, dangling)
  ASSERT_EQ(0, symlink(Path("sub/b").c_str(), Path("a").c_str()));
  ASSERT_EQ(0, symlink("c", Path("sub/b").c_str()));
  ASSERT_TRUE(NewWriter(Path("a"))->Write().ok());
  EXPECT_EQ(S_IFLNK, TypeOf(Path("a")));
  EXPECT_EQ(S_IFLNK, TypeOf(Path("sub/b")));
  EXPECT_EQ(Expected(), ReadAll(Path("sub/c")));
}

TEST_F(OfflineWriterTest, SymlinkLoopFailsAndIsCounted) {
  ASSERT_EQ(0, symlink("b", Path("a").c_str()));
  ASSERT_EQ(0, symlink("a", Path("b").c_str()));
  auto w = NewWriter(Path("a"));
  Status s = w->Write();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.message().find("symbolic links")) << s.ToString();
  EXPECT_EQ(1, w->failures());
  EXPECT_EQ(S_IFLNK, TypeOf(Path("a")));
  EXPECT_EQ(S_IFLNK, TypeOf(Path("b")));
}

TEST_F(OfflineWriterTest, PrivateCharDeviceIsWrittenNotReplaced) {
  if (geteuid() != 0) GTEST_SKIP() << "mknod needs root";
  std::string dev = Path("null");
  ASSERT_EQ(0, mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)));
  ASSERT_EQ(0, chmod(dev.c_str(), 0666));  // whatever the umask
  std::string link = Path("null-link");    // also through a symlink
  ASSERT_EQ(0, symlink(dev.c_str(), link.c_str()));
  auto w = NewWriter(dev);
  ASSERT_TRUE(w->Write().ok());
  ASSERT_TRUE(w->Write().ok());
  ASSERT_TRUE(NewWriter(link)->Write().ok());
  struct stat st;
  ASSERT_EQ(0, lstat(dev.c_str(), &st));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(makedev(1, 3), st.st_rdev);
  EXPECT_EQ(0666u, st.st_mode & 07777);
  EXPECT_EQ(S_IFLNK, TypeOf(link));
  EXPECT_TRUE(Leftovers(dir_).empty());
}

TEST_F(OfflineWriterTest, FifoReaderGetsOneCompleteStreamPerWrite) {
  std::string fifo = Path("fifo");
  ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
  // The reader opens, reads to EOF (the writer closes after each Write())
  // and closes, twice; the next Write() waits until it closed (two writes
  // in quick succession could otherwise both land in one open of a reader
  // that has not yet seen EOF).
  std::vector<std::string> got;
  std::promise<void> first_read;
  std::promise<void> done;
  std::thread reader([&] {
    for (int i = 0; i < 2; ++i) {
      int fd = open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) break;
      got.push_back(ReadFd(fd));
      close(fd);
      if (i == 0) first_read.set_value();
    }
    done.set_value();
  });
  // A reader left waiting (a broken writer) is released through a handle on
  // the FIFO itself, which works even if its name was replaced.
  int handle = open(fifo.c_str(), O_PATH | O_CLOEXEC);
  ASSERT_GE(handle, 0);
  auto release = [handle] {
    close(open(("/proc/self/fd/" + std::to_string(handle)).c_str(), O_WRONLY | O_NONBLOCK));
  };
  auto w = NewWriter(fifo);
  EXPECT_TRUE(w->Write().ok());
  if (first_read.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "reader got no first stream";
    release();
  }
  EXPECT_TRUE(w->Write().ok());
  if (done.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "reader got no second stream";
    release();
  }
  reader.join();
  close(handle);
  ASSERT_EQ(2u, got.size());
  EXPECT_EQ(Expected(), got[0]);
  EXPECT_EQ(Expected(), got[1]);
  EXPECT_EQ(S_IFIFO, TypeOf(fifo));
  EXPECT_EQ(0600u, ModeOf(fifo));
  EXPECT_EQ(0, w->failures());
}

TEST_F(OfflineWriterTest, FifoWithoutReaderFailsAfterTheBoundedWait) {
  std::string fifo = Path("fifo");
  ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
  auto w = NewWriter(fifo, /*timeout_ms=*/200);
  auto t0 = std::chrono::steady_clock::now();
  Status s = w->Write();
  double took = Seconds(t0);
  EXPECT_EQ(Status::kUnavailable, s.code()) << s.ToString();
  EXPECT_GE(took, 0.15);
  EXPECT_LT(took, 2.0);
  EXPECT_EQ(1, w->failures());
  EXPECT_EQ(S_IFIFO, TypeOf(fifo));
}

TEST_F(OfflineWriterTest, FifoReaderThatStopsReadingCannotHangTheWriter) {
  std::string fifo = Path("fifo");
  ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
  int rd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  int filler = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(filler, 0);
  std::string block(4096, 'x');
  while (write(filler, block.data(), block.size()) > 0) {
  }
  auto w = NewWriter(fifo, /*timeout_ms=*/200);
  auto t0 = std::chrono::steady_clock::now();
  Status s = w->Write();
  EXPECT_EQ(Status::kUnavailable, s.code()) << s.ToString();
  EXPECT_LT(Seconds(t0), 2.0);
  EXPECT_EQ(1, w->failures());
  close(filler);
  close(rd);
}

TEST_F(OfflineWriterTest, FifoReaderThatGoesAwayIsAnErrorNotASignal) {
  std::string fifo = Path("fifo");
  ASSERT_EQ(0, mkfifo(fifo.c_str(), 0600));
  int rd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  int filler = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(filler, 0);
  std::string block(4096, 'x');
  while (write(filler, block.data(), block.size()) > 0) {
  }
  // The writer blocks on the full pipe; then the reader closes: EPIPE.
  std::thread closer([rd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    close(rd);
  });
  auto w = NewWriter(fifo, /*timeout_ms=*/5000);
  Status s = w->Write();  // SIGPIPE's default action would end this test binary
  closer.join();
  EXPECT_EQ(Status::kIOError, s.code()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("Broken pipe")) << s.ToString();
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(0, sigismember(&pending, SIGPIPE)) << "no SIGPIPE left pending";
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_EQ(0, sigismember(&mask, SIGPIPE)) << "signal mask restored";
  close(filler);
}

TEST_F(OfflineWriterTest, UnixSocketListenerReceivesTheProfile) {
  std::string path = Path("sock");
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(ls, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(0, bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  ASSERT_EQ(0, listen(ls, 4));
  std::string got;
  std::thread server([&] {
    pollfd pfd = {ls, POLLIN, 0};
    if (poll(&pfd, 1, 10000) != 1) return;  // a broken writer must not hang the test
    int c = accept(ls, nullptr, nullptr);
    if (c >= 0) got = ReadFd(c), close(c);
  });
  auto w = NewWriter(path);
  EXPECT_TRUE(w->Write().ok());
  server.join();
  EXPECT_EQ(Expected(), got);
  EXPECT_EQ(S_IFSOCK, TypeOf(path));
  close(ls);
  // Nobody listens any more: bounded wait, then an error.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Status::kUnavailable, NewWriter(path, 200)->Write().code());
  EXPECT_LT(Seconds(t0), 2.0);
  EXPECT_EQ(S_IFSOCK, TypeOf(path));
}

TEST_F(OfflineWriterTest, PipeBehindProcFdIsWrittenDirectly) {
  // What /dev/stdout is when stdout is a pipe.
  int p[2];
  ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
  auto w = NewWriter("/proc/self/fd/" + std::to_string(p[1]));
  ASSERT_TRUE(w->Write().ok());  // fits the pipe buffer
  close(p[1]);
  EXPECT_EQ(Expected(), ReadFd(p[0]));
  close(p[0]);
}

TEST_F(OfflineWriterTest, SocketBehindProcFdFailsAtOnce) {
  // What /dev/stdout is under systemd: a connected socket cannot be reopened.
  int sv[2];
  ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  auto w = NewWriter("/proc/self/fd/" + std::to_string(sv[1]));
  auto t0 = std::chrono::steady_clock::now();
  Status s = w->Write();
  EXPECT_EQ(Status::kIOError, s.code()) << s.ToString();
  EXPECT_LT(Seconds(t0), 0.5);
  EXPECT_EQ(1, w->failures());
  close(sv[0]);
  close(sv[1]);
}

TEST_F(OfflineWriterTest, FileBehindDevFdIsRewrittenInPlace) {
  // What /dev/stdout is when stdout is a file: the same file gets the profile.
  std::string path = Path("stdout.txt");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
  ASSERT_GE(fd, 0);
  std::string junk(Expected().size() * 2, 'j');
  ASSERT_EQ(static_cast<ssize_t>(junk.size()), write(fd, junk.data(), junk.size()));
  struct stat before, after;
  ASSERT_EQ(0, fstat(fd, &before));
  auto w = NewWriter("/dev/fd/" + std::to_string(fd));  // /dev/fd -> /proc/self/fd
  ASSERT_TRUE(w->Write().ok());
  ASSERT_EQ(0, stat(path.c_str(), &after));
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(0640u, after.st_mode & 07777);
  EXPECT_EQ(Expected(), ReadAll(path));
  EXPECT_TRUE(Leftovers(dir_).empty());
  close(fd);
}

TEST_F(OfflineWriterTest, DirectoryIsLeftAloneAndCounted) {
  std::string d = Path("dir");
  ASSERT_EQ(0, mkdir(d.c_str(), 0755));
  ASSERT_EQ(0, symlink("dir", Path("dir-link").c_str()));
  auto w = NewWriter(d);
  Status s = w->Write();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.message().find("is a directory")) << s.ToString();
  EXPECT_FALSE(w->Write().ok());
  EXPECT_EQ(2, w->failures());
  EXPECT_FALSE(NewWriter(Path("dir-link"))->Write().ok());
  EXPECT_EQ(S_IFDIR, TypeOf(d));
  EXPECT_EQ(0755u, ModeOf(d));
  EXPECT_TRUE(fs::is_empty(d));
  EXPECT_EQ(S_IFLNK, TypeOf(Path("dir-link")));
}

TEST_F(OfflineWriterTest, MissingDirectoryFailsAndIsCounted) {
  std::string path = Path("no/such/dir/p.pb.gz");
  auto w = NewWriter(path);
  Status s = w->Write();
  EXPECT_EQ(Status::kIOError, s.code());
  EXPECT_NE(std::string::npos, s.message().find("No such file or directory")) << s.ToString();
  EXPECT_EQ(1, w->failures());
  EXPECT_FALSE(fs::exists(Path("no")));
  // A later Write() that can succeed does not reset the count.
  ASSERT_EQ(0, mkdir(Path("no").c_str(), 0755));
  ASSERT_EQ(0, mkdir(Path("no/such").c_str(), 0755));
  ASSERT_EQ(0, mkdir(Path("no/such/dir").c_str(), 0755));
  EXPECT_TRUE(w->Write().ok());
  EXPECT_EQ(1, w->failures());
  EXPECT_EQ(Expected(), ReadAll(path));
}

TEST_F(OfflineWriterTest, UnwritableDirectoryFailsAndIsCounted) {
  // Root ignores directory modes: the check runs in a child that drops to
  // "nobody" (65534). Exit status: 0 as expected, else the failing step.
  std::string d = Path("ro");
  ASSERT_EQ(0, mkdir(d.c_str(), 0555));
  ASSERT_EQ(0, chmod(dir_.c_str(), 0755));  // nobody may reach "ro"
  const std::string path = d + "/p.pb.gz";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    OfflineWriter w(path);
    w.Add(TestSummary());
    Status s = w.Write();
    if (s.ok()) _exit(11);
    if (s.message().find("Permission denied") == std::string::npos) _exit(12);
    _exit(w.failures() == 1 ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(0, WEXITSTATUS(status));
  EXPECT_TRUE(fs::is_empty(d));
}

}  // namespace
}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
