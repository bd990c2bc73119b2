#include "cli/run_command.h"

#include "capture/unix_address.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace stackstream {
namespace cli {

namespace {

bool IsFile(const std::string& path) {
  struct stat st;
  return !path.empty() && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string GetEnv(const char* name) {
  const char* v = getenv(name);
  return v == nullptr ? "" : v;
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool Executable(const std::string& path) { return IsFile(path) && access(path.c_str(), X_OK) == 0; }


// A node daemon answers at "address".
bool DaemonAnswers(const std::string& address) {
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(address, &sa, &len)) return false;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0;
  close(fd);
  return ok;
}

// Starts `stackstream-agent --helper` on a fresh abstract socket; returns its
// pid (or -1) and the socket's name in "*address".
pid_t StartHelper(const std::string& binary, std::string* address) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char name[96];
  snprintf(name, sizeof name, "@stackstream-run.%d.%ld%09ld", static_cast<int>(getpid()),
           static_cast<long>(now.tv_sec), static_cast<long>(now.tv_nsec));
  sockaddr_un sa;
  socklen_t len = 0;
  if (!capture::UnixAddress(name, &sa, &len)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    unsetenv("LD_PRELOAD");
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    if (fd != 3) dup2(fd, 3);
    else fcntl(3, F_SETFD, 0);
    setpgid(0, 0);  // Ctrl-C reaches the command; the helper finishes its work
    execl(binary.c_str(), "stackstream-agent", "--helper", "--listen-fd", "3",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fd);
  if (pid > 0) *address = name;
  return pid;
}

// Waits for "pid" at most "timeout_ms"; false when it is still running.
bool WaitBounded(pid_t pid, int timeout_ms, int* status) {
  for (int waited = 0;; waited += 10) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return true;
    if (waited >= timeout_ms) return false;
    usleep(10000);
  }
}

volatile sig_atomic_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

}  // namespace

std::string FindAgentBinary(const std::string& agent_library) {
  const std::string env = GetEnv("STACKSTREAM_AGENT_BIN");
  if (!env.empty()) return Executable(env) ? env : "";
  std::vector<std::string> candidates = {DirOf(agent_library) + "/../bin/stackstream-agent"};
  const std::string dir = SelfDir();
  if (!dir.empty()) {
    candidates.push_back(dir + "/stackstream-agent");
    candidates.push_back(dir + "/../../bin/stackstream-agent");
  }
  for (const std::string& c : candidates) {
    if (Executable(c)) return c;
  }
  return "";
}

std::string FindAgent(std::vector<std::string>* searched) {
  std::vector<std::string> candidates;
  const std::string env = GetEnv("STACKSTREAM_AGENT_PATH");
  if (!env.empty()) candidates.push_back(env);
  const std::string dir = SelfDir();
  if (!dir.empty()) {
    candidates.push_back(dir + "/../lib/libstackstream.so");
    candidates.push_back(dir + "/../../agent/libstackstream.so");
  }
  for (const std::string& c : candidates) {
    if (searched != nullptr) searched->push_back(c);
    if (IsFile(c)) {
      char real[PATH_MAX];
      if (realpath(c.c_str(), real) != nullptr) return real;
      return c;
    }
  }
  return "";
}

bool BuildRunEnv(const RunOptions& options, const std::string& agent_path,
                 std::map<std::string, std::string>* env, std::string* error) {
  env->clear();
  if (options.command.empty()) {
    *error = "no command given (usage: stackstream run [options] -- COMMAND [ARGS...])";
    return false;
  }
  if (agent_path.find_first_of(": ") != std::string::npos) {
    *error = "agent path \"" + agent_path + "\" contains ':' or ' ', which LD_PRELOAD cannot hold";
    return false;
  }
  const std::string preload = GetEnv("LD_PRELOAD");
  (*env)["LD_PRELOAD"] = preload.empty() ? agent_path : agent_path + ":" + preload;
  if (!options.collector.empty()) (*env)["STACKSTREAM_COLLECTOR"] = options.collector;
  if (!options.output.empty()) (*env)["STACKSTREAM_OUTPUT"] = options.output;
  if (options.hz > 0) (*env)["STACKSTREAM_HZ"] = std::to_string(options.hz);
  if (!options.mode.empty()) {
    if (options.mode != "cpu" && options.mode != "wall") {
      *error = "--mode must be cpu or wall, not \"" + options.mode + "\"";
      return false;
    }
    (*env)["STACKSTREAM_MODE"] = options.mode;
  }
  if (options.heap) (*env)["STACKSTREAM_PROFILES"] = "cpu,heap";
  if (options.heap_rate > 0) (*env)["STACKSTREAM_HEAP_RATE"] = std::to_string(options.heap_rate);
  if (!options.service.empty()) (*env)["STACKSTREAM_SERVICE"] = options.service;
  if (!options.labels.empty()) {
    std::string labels = GetEnv("STACKSTREAM_LABELS");
    for (const std::string& l : options.labels) {
      size_t eq = l.find('=');
      if (eq == std::string::npos || eq == 0 || l.find(',') != std::string::npos) {
        *error = "--label wants k=v (no commas), not \"" + l + "\"";
        return false;
      }
      if (!labels.empty()) labels += ",";
      labels += l;
    }
    (*env)["STACKSTREAM_LABELS"] = labels;
  }
  return true;
}

int RunWithAgent(const RunOptions& options) {
  std::vector<std::string> searched;
  const std::string agent = FindAgent(&searched);
  if (agent.empty()) {
    std::fprintf(stderr, "stackstream: cannot find the agent libstackstream.so; looked at:\n");
    for (const auto& s : searched) std::fprintf(stderr, "  %s\n", s.c_str());
    std::fprintf(stderr, "set STACKSTREAM_AGENT_PATH to its path\n");
    return 127;
  }
  std::map<std::string, std::string> env;
  std::string error;
  if (!BuildRunEnv(options, agent, &env, &error)) {
    std::fprintf(stderr, "stackstream run: %s\n", error.c_str());
    return 2;
  }
  // One helper for the run, unless a node daemon serves this machine.
  std::string daemon = GetEnv("STACKSTREAM_AGENT_SOCKET");
  if (daemon.empty()) daemon = "/run/stackstream/agent.sock";
  pid_t helper = -1;
  if (!DaemonAnswers(daemon)) {
    const std::string binary = FindAgentBinary(agent);
    std::string address;
    if (!binary.empty()) helper = StartHelper(binary, &address);
    if (helper > 0) {
      env["STACKSTREAM_AGENT_SOCKET"] = address;
    } else {
      std::fprintf(stderr, "stackstream run: cannot start stackstream-agent%s; the command "
                   "runs unprofiled unless the agent library finds one itself\n",
                   binary.empty() ? " (not found next to the agent library)" : "");
    }
  }
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& a : options.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return 126;
  pid_t child = fork();
  if (child < 0) {
    std::fprintf(stderr, "stackstream run: fork: %s\n", strerror(errno));
    return 126;
  }
  if (child == 0) {
    close(pipefd[0]);
    execvp(argv[0], argv.data());
    int err = errno;
    ssize_t w = write(pipefd[1], &err, sizeof err);
    (void)w;
    _exit(127);
  }
  close(pipefd[1]);
  g_child = child;
  // The terminal sends Ctrl-C and Ctrl-\ to the command itself; a signal sent to
  // `run` alone is passed on.
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGTERM, ForwardSignal);
  signal(SIGHUP, ForwardSignal);
  int exec_err = 0;
  ssize_t n;
  do {
    n = read(pipefd[0], &exec_err, sizeof exec_err);
  } while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  if (n > 0) {
    std::fprintf(stderr, "stackstream run: cannot run \"%s\": %s\n", argv[0], strerror(exec_err));
    if (helper > 0) WaitBounded(helper, 2000, &status);
    return exec_err == ENOENT ? 127 : 126;
  }
  // The helper exits once every process of the run is gone and its data is
  // delivered (it gives up on an unreachable collector after a few seconds).
  if (helper > 0) {
    int helper_status = 0;
    if (!WaitBounded(helper, 15000, &helper_status)) {
      std::fprintf(stderr, "stackstream run: the agent is still delivering; leaving it to finish\n");
    }
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, nullptr);
    kill(getpid(), sig);
    return 128 + sig;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace cli
}  // namespace stackstream
