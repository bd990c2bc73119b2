#include "cli/attach_command.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>

#include "cli/run_command.h"

namespace stackstream {
namespace cli {

int AttachWithAgent(const AttachOptions& o) {
  const std::string binary = FindAgentBinary(FindAgent(nullptr));
  if (binary.empty()) {
    std::fprintf(stderr,
                 "stackstream attach: stackstream-agent not found (set STACKSTREAM_AGENT_BIN, "
                 "or install it next to this command)\n");
    return 127;
  }
  std::vector<std::string> args = {"stackstream-agent", "--attach", std::to_string(o.pid)};
  auto add = [&args](const char* flag, const std::string& value) {
    if (value.empty()) return;
    args.push_back(flag);
    args.push_back(value);
  };
  if (o.duration > 0) add("--duration", std::to_string(o.duration));
  if (o.hz > 0) add("--hz", std::to_string(o.hz));
  add("--mode", o.mode);
  add("--service", o.service);
  for (const std::string& l : o.labels) add("--label", l);
  add("--collector", o.collector);
  add("--output", o.output);
  if (o.no_daemon) args.push_back("--no-daemon");
  if (o.detach) args.push_back("--detach");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(binary.c_str(), argv.data());
  std::fprintf(stderr, "stackstream attach: cannot run %s: %s\n", binary.c_str(), strerror(errno));
  return 126;
}

}  // namespace cli
}  // namespace stackstream
