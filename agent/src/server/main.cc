// stackstream-agent: turns what profiled hosts capture into portable stack
// summaries (unwind, symbolize, summarize, send / write).
//
//   stackstream-agent --listen unix:/run/stackstream/agent.sock [--collector ADDR]
//       the node daemon: every profiled process on the machine hands it its
//       rings (they find it through STACKSTREAM_AGENT_SOCKET or the default
//       path);
//   stackstream-agent --helper --listen-fd N
//       a private helper, started by libstackstream.so for one process tree
//       when no daemon answers (not meant to be run by hand).
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "config.h"
#include "log.h"
#include "server/agent_server.h"

int main(int argc, char** argv) {
  using stackstream::agent::Config;
  CLI::App app{"stackstream-agent: unwinds, symbolizes and sends what profiled processes capture"};
  std::string listen = stackstream::agent::kDefaultAgentSocket;
  int listen_fd = -1;
  bool helper = false;
  std::string collectors;
  std::string log_level = "info";
  std::string log_file;
  bool system_lines = false;
  app.add_option("--listen", listen, "socket to serve: unix:PATH or @NAME (abstract)")
      ->capture_default_str();
  app.add_option("--listen-fd", listen_fd, "serve an inherited listening socket (helper mode)");
  app.add_flag("--helper", helper,
               "private helper of one process tree: exit once every host has gone");
  app.add_option("--collector", collectors,
                 "collector gRPC address(es), comma-separated, for hosts that set no "
                 "STACKSTREAM_COLLECTOR (default 127.0.0.1:7433)");
  app.add_option("--log-level", log_level, "off, error, warn, info, debug")->capture_default_str();
  app.add_option("--log-file", log_file, "log here instead of stderr");
  app.add_flag("--system-lines", system_lines,
               "file:line for system libraries from their separate debug files");
  CLI11_PARSE(app, argc, argv);

  // The module-file cache and elfutils keep up to ~2 x 256 files open.
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  Config log_config;
  log_config.log_level = helper ? "warn" : log_level;
  log_config.log_file = log_file;
  stackstream::agent::InitAgentLog(log_config);

  stackstream::agent::ServerOptions options;
  options.helper = helper;
  options.system_library_lines = system_lines;
  if (!collectors.empty()) {
    size_t start = 0;
    while (start <= collectors.size()) {
      size_t comma = collectors.find(',', start);
      if (comma == std::string::npos) comma = collectors.size();
      std::string one = collectors.substr(start, comma - start);
      if (!one.empty()) options.default_collectors.push_back(one);
      start = comma + 1;
    }
  }
  if (listen_fd >= 0) {
    options.listen_fd = listen_fd;
  } else {
    std::string error;
    options.listen_fd = stackstream::agent::ListenOn(listen, &error);
    if (options.listen_fd < 0) {
      stackstream::agent::AgentLog()->error("{}", error);
      return 1;
    }
    stackstream::agent::AgentLog()->info("serving {}", listen);
  }
  std::string path = listen.rfind("unix:", 0) == 0 ? listen.substr(5) : listen;
  struct stat ours = {};
  bool remove_path = listen_fd < 0 && !path.empty() && path[0] != '@' &&
                     stat(path.c_str(), &ours) == 0;
  int status = stackstream::agent::RunAgentServer(options);
  // Remove our socket file (not one a newer daemon put there meanwhile).
  struct stat now = {};
  if (remove_path && stat(path.c_str(), &now) == 0 && now.st_ino == ours.st_ino &&
      now.st_dev == ours.st_dev) {
    unlink(path.c_str());
  }
  return status;
}
