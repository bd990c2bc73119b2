// `stackstream run`: runs a command with the agent preloaded. Builds the
// environment (LD_PRELOAD + STACKSTREAM_*) and execs, so the exit status is
// the command's. Single-threaded use only (touches the process environment).
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

// Sets the environment and execs the command. Returns only on failure with
// the exit status to use (127 not found, 126 not executable, 2 usage).
int RunWithAgent(const RunOptions& options);

}  // namespace cli
}  // namespace stackstream
