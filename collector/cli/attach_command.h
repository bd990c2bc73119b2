// `stackstream attach --pid PID ...`: profiles a running process from
// outside. The work is done by stackstream-agent's attach mode (in the node
// daemon when one answers, else in the agent binary this command execs);
// this command finds that binary like `stackstream run` finds its helper and
// passes the options on.
#pragma once

#include <string>
#include <vector>

namespace stackstream {
namespace cli {

struct AttachOptions {
  int pid = 0;
  double duration = 0;    // seconds; 0 = until Ctrl-C or the target exits
  int hz = 0;             // 0 = default
  std::string mode;       // "" or "cpu"
  std::string service;
  std::vector<std::string> labels;
  std::string collector;
  std::string output;
  bool no_daemon = false;
  bool detach = false;
};

// Execs stackstream-agent --attach; returns only on failure (status 127 when
// the agent binary is not found).
int AttachWithAgent(const AttachOptions& options);

}  // namespace cli
}  // namespace stackstream
