// `stackstream run`: runs a command with the agent preloaded. Builds the
// environment (LD_PRELOAD + STACKSTREAM_*), starts one private
// stackstream-agent helper for the run (unless a node daemon answers at
// STACKSTREAM_AGENT_SOCKET / the default path) and points the command's
// process tree at it, runs the command, and waits for the helper to deliver
// what the command captured (bounded), so that the profile is in the
// collector (or the file) when `run` returns. The exit status is the
// command's; a command killed by a signal makes `run` die of the same signal.
// Single-threaded use only (touches the process environment).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace stackstream {
namespace cli {

struct RunOptions {
  std::string collector;  // STACKSTREAM_COLLECTOR when not empty
  std::string output;     // STACKSTREAM_OUTPUT
  int hz = 0;             // STACKSTREAM_HZ when > 0
  std::string mode;       // STACKSTREAM_MODE
  bool heap = false;      // STACKSTREAM_PROFILES=cpu,heap
  int64_t heap_rate = 0;  // STACKSTREAM_HEAP_RATE when > 0
  std::string service;    // STACKSTREAM_SERVICE
  std::vector<std::string> labels;  // k=v each -> STACKSTREAM_LABELS
  std::vector<std::string> command;
};

// Where the agent is: $STACKSTREAM_AGENT_PATH, else
// <dir of this executable>/../lib/libstackstream.so, else the build-tree
// <build>/agent/libstackstream.so (from <build>/collector/cli/stackstream).
// Returns "" when none exists; "*searched" lists the places looked at.
std::string FindAgent(std::vector<std::string>* searched);

// The environment changes "options" makes (name -> value), given the
// current environment values of LD_PRELOAD and STACKSTREAM_LABELS.
// Returns false and sets "*error" for a bad option.
bool BuildRunEnv(const RunOptions& options, const std::string& agent_path,
                 std::map<std::string, std::string>* env, std::string* error);

// Where stackstream-agent is: $STACKSTREAM_AGENT_BIN, else next to the
// agent library (../bin/stackstream-agent), else next to this executable
// (installed) or <build>/bin (build tree). "" when none exists.
std::string FindAgentBinary(const std::string& agent_library);

// Runs the command as described above. Returns its exit status (127 not
// found, 126 not executable, 2 usage).
int RunWithAgent(const RunOptions& options);

}  // namespace cli
}  // namespace stackstream
