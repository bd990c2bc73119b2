// Agent configuration, read once from the environment (contract.md).
// A bad value is replaced by its default and reported with one log line
// naming the variable (see Config::warnings). Never fails.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace stackstream {
namespace agent {

enum class Mode { kCpu, kWall };

// Where hosts look for the node daemon when STACKSTREAM_AGENT_SOCKET is unset.
constexpr const char* kDefaultAgentSocket = "/run/stackstream/agent.sock";

struct Config {
  bool disabled = false;                            // STACKSTREAM_DISABLE=1
  std::vector<std::string> collectors = {"127.0.0.1:7433"};  // STACKSTREAM_COLLECTOR
  bool collector_set = false;                       // STACKSTREAM_COLLECTOR given explicitly
  std::string output;                               // STACKSTREAM_OUTPUT, %p expanded
  std::string service;                              // STACKSTREAM_SERVICE or exe basename
  std::vector<std::pair<std::string, std::string>> labels;  // STACKSTREAM_LABELS k=v,...
  Mode mode = Mode::kCpu;                           // STACKSTREAM_MODE
  int hz = 100;                                     // STACKSTREAM_HZ (1..10000)
  // STACKSTREAM_PROFILES: "cpu" (default), "heap" or "cpu,heap". cpu covers
  // both STACKSTREAM_MODE values (cpu and wall).
  bool profile_cpu = true;
  bool profile_heap = false;
  int64_t heap_rate = 512 * 1024;                   // STACKSTREAM_HEAP_RATE (mean bytes between samples)
  int flush_ms = 10000;                             // STACKSTREAM_FLUSH_MS (>= 100)
  int max_depth = 128;                              // STACKSTREAM_MAX_DEPTH (4..kMaxDepthLimit)
  std::string log_level = "warn";                   // STACKSTREAM_LOG
  std::string log_file;                             // STACKSTREAM_LOG_FILE (empty = stderr)
  std::string token;                                // STACKSTREAM_TOKEN
  std::string tls_ca;                               // STACKSTREAM_TLS_CA (PEM path)
  // Clock for cpu mode: "auto" (perf task-clock where permitted, else timers),
  // "perf" or "timer". STACKSTREAM_CPU_CLOCK; not in the contract, for tests
  // and benchmarks.
  std::string cpu_clock = "auto";
  int64_t spool_bytes = 4 << 20;                    // STACKSTREAM_SPOOL_BYTES
  // Source lines / inline frames for system libraries from their separate
  // debug files (STACKSTREAM_SYSTEM_LINES=1). Off by default: costly.
  bool system_library_lines = false;
  // The node daemon's socket: a path, or "@name" for an abstract socket
  // (STACKSTREAM_AGENT_SOCKET; default kDefaultAgentSocket).
  std::string agent_socket = kDefaultAgentSocket;

  std::vector<std::string> warnings;                // one line per bad value

  int64_t period_nanos() const { return 1000000000LL / hz; }
};

constexpr int kMaxDepthLimit = 512;

// Reads the STACKSTREAM_* environment. "pid" expands %p in the output path.
Config ReadConfigFromEnv(int pid);

// Same, from "lookup" (name -> value or nullptr): the environment a host
// sent to stackstream-agent. "exe_path" gives the default service name.
using EnvLookup = std::function<const char*(const char*)>;
Config ReadConfig(const EnvLookup& lookup, int pid, const std::string& exe_path);

}  // namespace agent
}  // namespace stackstream
