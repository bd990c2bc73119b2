// stackstream-agent: turns what profiled hosts capture into portable stack
// summaries (unwind, symbolize, summarize, send / write).
//
//   stackstream-agent --listen unix:/run/stackstream/agent.sock [--collector ADDR]
//       the node daemon: every profiled process on the machine hands it its
//       rings (they find it through STACKSTREAM_AGENT_SOCKET or the default
//       path);
//   stackstream-agent --helper --listen-fd N
//       a private helper, started by libstackstream.so for one process tree
//       when no daemon answers (not meant to be run by hand);
//   stackstream-agent --attach PID [--duration S] [--hz N] [--service NAME]
//                     [--label k=v]... [--collector ADDR] [--output FILE]
//       profiles a running process from outside with perf events (what
//       `stackstream attach` runs): inside the node daemon when one answers
//       at STACKSTREAM_AGENT_SOCKET, else here (attach/attach_command.h).
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "attach/attach_command.h"
#include "attach/attach_protocol.h"
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
  // The module-file cache and elfutils keep up to ~2 x 256 files open (and attach:
  // a perf event per thread).
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  stackstream::agent::AttachCommand attach;
  double duration_s = 0;
  int hz = 0;
  std::string mode, service, output;
  std::vector<std::string> labels;
  bool no_daemon = false;
  auto* attach_opt = app.add_option("--attach", attach.pid,
                                    "profile the running process PID from outside (perf events)");
  app.add_option("--duration", duration_s, "attach: seconds (default: until Ctrl-C or exit)")
      ->check(CLI::Range(0.001, stackstream::agent::kMaxAttachDurationMs / 1000.0))
      ->needs(attach_opt);
  app.add_option("--hz", hz, "attach: samples per second per thread (STACKSTREAM_HZ)")
      ->needs(attach_opt);
  app.add_option("--mode", mode, "attach: cpu (the only mode perf attach samples)")
      ->needs(attach_opt);
  app.add_option("--service", service, "attach: service name (default: executable basename)")
      ->needs(attach_opt);
  app.add_option("--label", labels, "attach: extra label k=v (repeatable)")->needs(attach_opt);
  app.add_option("--output", output, "attach: also write a pprof file here (%p = pid)")
      ->needs(attach_opt);
  app.add_flag("--no-daemon", no_daemon, "attach: run here even when a node daemon answers")
      ->needs(attach_opt);
  app.add_flag("--detach", attach.detach,
               "attach: hand the attach to the node daemon and return once it started")
      ->needs(attach_opt);
  CLI11_PARSE(app, argc, argv);

  if (attach_opt->count() > 0) {
    using stackstream::agent::Config;
    // Settings as a preloaded host's environment gives them: STACKSTREAM_*
    // of our environment, overridden by the flags.
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      size_t eq = kv.find('=');
      if (kv.rfind("STACKSTREAM_", 0) == 0 && eq != std::string::npos) {
        attach.vars[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    }
    if (hz > 0) attach.vars["STACKSTREAM_HZ"] = std::to_string(hz);
    if (!mode.empty()) attach.vars["STACKSTREAM_MODE"] = mode;
    if (!service.empty()) attach.vars["STACKSTREAM_SERVICE"] = service;
    if (!output.empty()) attach.vars["STACKSTREAM_OUTPUT"] = output;
    if (!collectors.empty()) attach.vars["STACKSTREAM_COLLECTOR"] = collectors;
    if (!labels.empty()) {
      std::string joined;
      for (const std::string& l : labels) {
        if (l.find('=') == std::string::npos || l.find(',') != std::string::npos) {
          fprintf(stderr, "stackstream attach: --label \"%s\" is not k=v\n", l.c_str());
          return 2;
        }
        joined += (joined.empty() ? "" : ",") + l;
      }
      auto it = attach.vars.find("STACKSTREAM_LABELS");
      if (it != attach.vars.end() && !it->second.empty()) joined = it->second + "," + joined;
      attach.vars["STACKSTREAM_LABELS"] = joined;
    }
    attach.duration_ms = static_cast<int64_t>(duration_s * 1000);
    attach.use_daemon = !no_daemon;
    const char* socket = getenv("STACKSTREAM_AGENT_SOCKET");
    attach.agent_socket = socket != nullptr && socket[0] != '\0'
                              ? socket
                              : stackstream::agent::kDefaultAgentSocket;
    attach.system_library_lines = system_lines;
    Config attach_log;
    attach_log.log_level = app.count("--log-level") > 0 ? log_level : "warn";
    attach_log.log_file = log_file;
    stackstream::agent::InitAgentLog(attach_log);
    return stackstream::agent::RunAttachCommand(attach);
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
