// stackstream: the command-line tool.
//   stackstream run [--collector ADDR] [--output FILE] [--hz N] [--mode cpu|wall] [--heap]
//                   [--service NAME] [--label k=v]... -- COMMAND [ARGS...]
//   stackstream top      [--server URL] --service NAME [--from T] [--to T] [--limit N] [--selector S]
//   stackstream export   [--server URL] --service NAME --format F [--from T --to T] [-o FILE]
//   stackstream services [--server URL]
//   stackstream attach   --pid PID [--duration S] [--hz N] [--mode cpu] [--service NAME]
//                        [--label k=v]... [--collector ADDR] [--output FILE]
//                        [--no-daemon] [--detach]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/attach_command.h"
#include "cli/run_command.h"
#include "cli/table.h"

namespace stackstream {
namespace cli {
namespace {

constexpr char kDefaultServer[] = "http://127.0.0.1:7434";

struct ServerFlags {
  std::string server = kDefaultServer;
  std::string token;
};

void AddServerFlags(CLI::App* cmd, ServerFlags* flags) {
  cmd->add_option("--server", flags->server, "collector HTTP API URL")
      ->capture_default_str()
      ->envname("STACKSTREAM_SERVER");
  cmd->add_option("--token", flags->token, "bearer token (default: $STACKSTREAM_TOKEN)")
      ->envname("STACKSTREAM_TOKEN");
}

struct QueryFlags {
  std::string service, from, to, selector, type;
};

void AddQueryFlags(CLI::App* cmd, QueryFlags* q) {
  cmd->add_option("--service", q->service, "service name")->required();
  cmd->add_option("--from", q->from, "start: unix seconds, RFC 3339 or now-15m (default now-1h)");
  cmd->add_option("--to", q->to, "end (default now)");
  cmd->add_option("--selector", q->selector, "label selector, e.g. {env=\"prod\"}");
  cmd->add_option("--type", q->type,
                  "profile type: cpu, wall, alloc_objects, alloc_space, inuse_objects, "
                  "inuse_space, or heap (the four heap types; export --format pprof only)");
}

Params QueryParamsOf(const QueryFlags& q) {
  Params p = {{"service", q.service}};
  if (!q.from.empty()) p.emplace_back("from", q.from);
  if (!q.to.empty()) p.emplace_back("to", q.to);
  if (!q.selector.empty()) p.emplace_back("selector", q.selector);
  if (!q.type.empty()) p.emplace_back("type", q.type);
  return p;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "stackstream: %s\n", message.c_str());
  return 1;
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Losses are data: when the agents lost samples in the range (the server's
// X-Stackstream-Dropped-Samples header), says so in one line after the table.
// On stderr, like the "no samples" note, so the table on stdout is unchanged
// for scripts.
void PrintLossNote(const ApiResponse& resp) {
  const long long dropped = std::atoll(resp.Header("X-Stackstream-Dropped-Samples").c_str());
  if (dropped <= 0) return;
  std::cout.flush();
  std::fprintf(stderr,
               "note: %lld sample%s lost by the agents in this range (see /api/v1/counters)\n",
               dropped, dropped == 1 ? " was" : "s were");
}

int Top(const ServerFlags& server, const QueryFlags& q, int limit, bool as_json) {
  ApiClient client(server.server, server.token);
  Params params = QueryParamsOf(q);
  params.emplace_back("limit", std::to_string(limit));
  ApiResponse resp;
  std::string error;
  if (!client.Get("/api/v1/top", params, &resp, &error)) return Fail(error);
  if (as_json) {
    std::cout << resp.body;
    return 0;
  }
  nlohmann::json rows;
  try {
    rows = nlohmann::json::parse(resp.body);
    if (!rows.is_array()) return Fail("unexpected answer from the server (not a JSON list)");
    const int64_t period = std::atoll(resp.Header("X-Stackstream-Period-Nanos").c_str());
    if (rows.empty()) {
      std::fprintf(stderr, "stackstream: no samples for service \"%s\" in that range\n",
                   q.service.c_str());
      PrintLossNote(resp);
      return 0;
    }
    Table table({"SELF%", "TOTAL%", "SELF", "TOTAL", "FUNCTION", "MODULE"},
                {true, true, true, true, false, false});
    for (const auto& r : rows) {
      const int64_t self = r.at("self").get<int64_t>();
      const int64_t total = r.at("total").get<int64_t>();
      table.AddRow({FormatPercent(r.at("self_pct").get<double>()),
                    FormatPercent(r.at("total_pct").get<double>()),
                    period > 0 ? FormatDuration(self * period) : std::to_string(self),
                    period > 0 ? FormatDuration(total * period) : std::to_string(total),
                    r.at("function").get<std::string>(),
                    Basename(r.value("module", std::string()))});
    }
    std::cout << table.Render();
    PrintLossNote(resp);
  } catch (const std::exception& e) {
    return Fail(std::string("unexpected answer from the server: ") + e.what());
  }
  return 0;
}

int Export(const ServerFlags& server, const QueryFlags& q, const std::string& format,
           const std::string& output) {
  ApiClient client(server.server, server.token);
  Params params = QueryParamsOf(q);
  params.emplace_back("format", format);
  ApiResponse resp;
  std::string error;
  if (!client.Get("/api/v1/profile", params, &resp, &error)) return Fail(error);
  if (output.empty() || output == "-") {
    std::cout.write(resp.body.data(), static_cast<std::streamsize>(resp.body.size()));
    std::cout.flush();
    return std::cout ? 0 : Fail("cannot write to stdout");
  }
  std::ofstream file(output, std::ios::binary | std::ios::trunc);
  if (!file) return Fail("cannot open \"" + output + "\" for writing");
  file.write(resp.body.data(), static_cast<std::streamsize>(resp.body.size()));
  file.close();
  if (!file) return Fail("cannot write \"" + output + "\"");
  std::fprintf(stderr, "wrote %zu bytes to %s\n", resp.body.size(), output.c_str());
  return 0;
}

int Services(const ServerFlags& server, bool as_json) {
  ApiClient client(server.server, server.token);
  ApiResponse resp;
  std::string error;
  if (!client.Get("/api/v1/services", {}, &resp, &error)) return Fail(error);
  if (as_json) {
    std::cout << resp.body;
    return 0;
  }
  try {
    auto services = nlohmann::json::parse(resp.body);
    if (!services.is_array()) return Fail("unexpected answer from the server (not a JSON list)");
    if (services.empty()) {
      std::fprintf(stderr, "stackstream: no services yet\n");
      return 0;
    }
    Table table({"SERVICE", "LABEL SETS", "FIRST SEEN", "LAST SEEN"}, {false, true, false, false});
    for (const auto& s : services) {
      table.AddRow({s.at("service").get<std::string>(),
                    std::to_string(s.value("label_sets", nlohmann::json::array()).size()),
                    s.value("first_seen", std::string()), s.value("last_seen", std::string())});
    }
    std::cout << table.Render();
  } catch (const std::exception& e) {
    return Fail(std::string("unexpected answer from the server: ") + e.what());
  }
  return 0;
}

int Main(int argc, char** argv) {
  // "run" takes everything after "--" (or after its first positional) as
  // the command, untouched by option parsing.
  std::vector<std::string> command;
  int parse_argc = argc;
  if (argc > 1 && std::string(argv[1]) == "run") {
    for (int i = 2; i < argc; ++i) {
      if (std::string(argv[i]) == "--") {
        command.assign(argv + i + 1, argv + argc);
        parse_argc = i;
        break;
      }
    }
  }

  CLI::App app{"stackstream: continuous profiler for native Linux programs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "stackstream 0.1.0");

  RunOptions run_opts;
  CLI::App* run = app.add_subcommand("run", "run a command with the profiling agent preloaded");
  run->add_option("--collector", run_opts.collector, "collector gRPC address (STACKSTREAM_COLLECTOR)");
  run->add_option("--output", run_opts.output, "also write a pprof file here at exit (%p = pid)");
  run->add_option("--hz", run_opts.hz, "samples per second per thread")
      ->check(CLI::Range(1, 10000));
  run->add_option("--mode", run_opts.mode, "cpu or wall")->check(CLI::IsMember({"cpu", "wall"}));
  run->add_flag("--heap", run_opts.heap,
                "also profile the heap (STACKSTREAM_PROFILES=cpu,heap): allocations and in-use "
                "memory");
  run->add_option("--heap-rate", run_opts.heap_rate,
                  "mean bytes between heap samples (STACKSTREAM_HEAP_RATE, default 524288)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  run->add_option("--service", run_opts.service, "service name (default: the executable's name)");
  run->add_option("--label", run_opts.labels, "extra label k=v (repeatable)");
  run->prefix_command();
  run->footer("Example: stackstream run --service api -- ./server --port 8080");

  ServerFlags top_server, export_server, services_server;
  QueryFlags top_q, export_q;
  int limit = 20;
  bool top_json = false, services_json = false;
  CLI::App* top = app.add_subcommand("top", "print the top functions of a service");
  AddServerFlags(top, &top_server);
  AddQueryFlags(top, &top_q);
  top->add_option("--limit", limit, "rows to print")->capture_default_str()->check(CLI::Range(1, 1000000));
  top->add_flag("--json", top_json, "print the server's JSON rows");

  std::string format, output;
  CLI::App* exp = app.add_subcommand("export", "download a merged profile");
  AddServerFlags(exp, &export_server);
  AddQueryFlags(exp, &export_q);
  exp->add_option("--format", format, "pprof, folded, speedscope or flamegraph")
      ->required()
      ->check(CLI::IsMember({"pprof", "folded", "speedscope", "flamegraph"}));
  exp->add_option("-o,--output", output, "output file (default: stdout)");

  CLI::App* services = app.add_subcommand("services", "list the services the collector knows");
  AddServerFlags(services, &services_server);
  services->add_flag("--json", services_json, "print the server's JSON");

  AttachOptions attach_opts;
  CLI::App* attach = app.add_subcommand(
      "attach", "profile a running process from outside (perf events; no restart, no preload)");
  attach->add_option("--pid", attach_opts.pid, "the process to profile")->required();
  attach->add_option("--duration", attach_opts.duration,
                     "seconds to profile (default: until Ctrl-C or the process exits)")
      ->check(CLI::PositiveNumber);
  attach->add_option("--hz", attach_opts.hz, "samples per second per thread")
      ->check(CLI::Range(1, 10000));
  attach->add_option("--mode", attach_opts.mode, "cpu (the only mode attach samples)")
      ->check(CLI::IsMember({"cpu"}));
  attach->add_option("--service", attach_opts.service,
                     "service name (default: the executable's name)");
  attach->add_option("--label", attach_opts.labels, "extra label k=v (repeatable)");
  attach->add_option("--collector", attach_opts.collector, "collector gRPC address");
  attach->add_option("--output", attach_opts.output, "also write a pprof file here (%p = pid)");
  attach->add_flag("--no-daemon", attach_opts.no_daemon,
                   "profile from this command even when a node daemon answers");
  attach->add_flag("--detach", attach_opts.detach,
                   "hand the attach to the node daemon and return once it started");
  attach->footer("Example: stackstream attach --pid 1234 --duration 30 --output prof.pb.gz");

  try {
    app.parse(parse_argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2
  }

  if (run->parsed()) {
    if (command.empty()) command = run->remaining();
    run_opts.command = command;
    if (run_opts.command.empty()) {
      std::fprintf(stderr, "stackstream run: no command given\n%s", run->help().c_str());
      return 2;
    }
    return RunWithAgent(run_opts);
  }
  if (attach->parsed()) return AttachWithAgent(attach_opts);
  if (top->parsed()) return Top(top_server, top_q, limit, top_json);
  if (exp->parsed()) return Export(export_server, export_q, format, output);
  if (services->parsed()) return Services(services_server, services_json);
  return 2;
}

}  // namespace
}  // namespace cli
}  // namespace stackstream

int main(int argc, char** argv) { return stackstream::cli::Main(argc, argv); }
