#include "session_harness.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "capture/module_scan.h"
#include "fuzz_check.h"
#include "log.h"
#include "pipeline/symbolizer.h"
#include "server/client_session.h"
#include "unwind/elf_file_cache.h"

namespace stackstream {
namespace fuzz {
namespace {

std::atomic<int64_t> g_samples{0};

class CountingSink : public agent::SampleSink {
 public:
  void OnSample(const agent::RawSample& s) override {
    FUZZ_CHECK(s.depth > 0 && s.pcs != nullptr, "an empty sample reached the pipeline");
    g_samples += s.weight;
  }
  void Flush(const agent::SamplingCounters&) override {}
  void Finish(int64_t) override {}
};

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void EmitModule(const capture::ModuleMessage& m, const char* path, void* arg) {
  std::string msg(reinterpret_cast<const char*>(&m), sizeof m);
  msg.append(path, strlen(path) + 1);
  static_cast<std::vector<std::string>*>(arg)->push_back(std::move(msg));
}

}  // namespace

SessionHarness::SessionHarness() {
  static bool quiet = [] {
    agent::AgentLog()->set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  int sv[2];
  FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
             "socketpair: %s", strerror(errno));
  host_fd_ = sv[1];
  // One file cache and symbolizer for the whole run, as in the agent.
  static std::shared_ptr<agent::ElfFileCache> files = std::make_shared<agent::ElfFileCache>();
  shared_ = std::make_unique<agent::SharedState>();
  shared_->files = files;
  shared_->symbolizer = std::make_unique<agent::pipeline::Symbolizer>();
  shared_->make_sink = [](const agent::Config&, const agent::HostProcess&) {
    return std::make_unique<CountingSink>();
  };
  session_ = std::make_unique<agent::ClientSession>(sv[0], getpid(), getuid(), getgid(),
                                                    shared_.get());
}

SessionHarness::~SessionHarness() {
  if (host_fd_ >= 0) close(host_fd_);
}

int SessionHarness::Memfd(const std::string& bytes, bool seal) {
  int fd = memfd_create("ss-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
  FUZZ_CHECK(ftruncate(fd, static_cast<off_t>(bytes.size())) == 0, "ftruncate");
  if (!bytes.empty()) FUZZ_CHECK(pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()), "pwrite");
  if (seal) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  return fd;
}

capture::MessageHeader SessionHarness::Header(uint32_t type, size_t total_bytes) {
  capture::MessageHeader h;
  h.magic = capture::kMessageMagic;
  h.type = type;
  h.size = static_cast<uint32_t>(total_bytes);
  h.version = capture::kFormatVersion;
  return h;
}

std::string SessionHarness::Hello(uint32_t flags) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  FUZZ_CHECK(n > 0, "readlink /proc/self/exe");
  exe[n] = '\0';
  const std::string env("STACKSTREAM_FLUSH_MS=1000\0", 26);
  capture::HelloMessage h;
  memset(&h, 0, sizeof h);
  h.pid = getpid();
  h.ppid = getppid();
  h.flags = flags;
  h.env_bytes = static_cast<uint32_t>(env.size());
  h.exe_bytes = static_cast<uint32_t>(n + 1);
  h.control_bytes = sizeof(capture::ControlBlock);
  h.header = Header(capture::kHello, sizeof h + env.size() + static_cast<size_t>(n) + 1);
  std::string msg(reinterpret_cast<const char*>(&h), sizeof h);
  msg += env;
  msg.append(exe, static_cast<size_t>(n) + 1);
  return msg;
}

std::string SessionHarness::ControlBlock() {
  std::string block(sizeof(capture::ControlBlock), '\0');
  const uint64_t magic = capture::kControlMagic;
  const uint32_t version = capture::kFormatVersion;
  const uint32_t size = sizeof(capture::ControlBlock);
  memcpy(&block[offsetof(capture::ControlBlock, magic)], &magic, sizeof magic);
  memcpy(&block[offsetof(capture::ControlBlock, version)], &version, sizeof version);
  memcpy(&block[offsetof(capture::ControlBlock, size)], &size, sizeof size);
  return block;
}

std::vector<std::string> SessionHarness::OwnModules(uint64_t generation) {
  std::vector<std::string> out;
  capture::ScanModules(generation, EmitModule, &out);
  return out;
}

std::string SessionHarness::ModulesEnd(uint64_t generation, bool full) {
  capture::ModulesEndMessage m;
  memset(&m, 0, sizeof m);
  m.header = Header(capture::kModulesEnd, sizeof m);
  m.generation = generation;
  m.flags = full ? capture::kModulesEndFull : 0;
  return std::string(reinterpret_cast<const char*>(&m), sizeof m);
}

bool SessionHarness::Send(const std::string& message, const std::vector<int>& fds) {
  iovec iov = {const_cast<char*>(message.data()), message.size()};
  msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))];
  if (!fds.empty()) {
    FUZZ_CHECK(fds.size() <= 8, "too many fds");
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    memcpy(CMSG_DATA(cm), fds.data(), fds.size() * sizeof(int));
  }
  // An empty datagram reads as end-of-file on a SEQPACKET socket: the host
  // would be taken for gone; it is a valid thing to fuzz, and sent as is.
  sendmsg(host_fd_, &mh, MSG_NOSIGNAL);
  return session_->ReadMessages();
}

void SessionHarness::Poll(bool final) { session_->Poll(MonoNs(), final); }

int64_t SessionHarness::Close() {
  close(host_fd_);
  host_fd_ = -1;
  session_->ReadMessages();
  for (int i = 0; i < 4 && !session_->Done(); ++i) session_->Poll(MonoNs(), true);
  FUZZ_CHECK(session_->Done(), "the session did not finish after the host hung up");
  session_->Finish(MonoNs());
  return session_->samples();
}

int64_t SessionHarness::samples_seen() const { return g_samples.load(); }

}  // namespace fuzz
}  // namespace stackstream
