#include "cli/run_command.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace

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
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& a : options.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  execvp(argv[0], argv.data());
  const int err = errno;
  std::fprintf(stderr, "stackstream run: cannot run \"%s\": %s\n", argv[0], strerror(err));
  return err == ENOENT ? 127 : 126;
}

}  // namespace cli
}  // namespace stackstream
