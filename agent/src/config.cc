// ReadConfigFromEnv: STACKSTREAM_* environment -> Config (see config.h).
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace stackstream {
namespace agent {
namespace {

// The variable source of the config being read (the process environment, or
// the environment a host sent to stackstream-agent).
thread_local const EnvLookup* t_lookup = nullptr;

const char* Env(const char* name) {
  const char* v = t_lookup != nullptr ? (*t_lookup)(name) : getenv(name);
  return (v != nullptr && v[0] != '\0') ? v : nullptr;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = Trim(s.substr(start, comma - start));
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

// Parses an integer in [lo, hi] from variable "name"; on a bad value records
// a warning and keeps "*out" (the default).
void ReadInt(Config* c, const char* name, int64_t lo, int64_t hi, int64_t* out) {
  const char* v = Env(name);
  if (v == nullptr) return;
  errno = 0;
  char* end = nullptr;
  long long x = strtoll(v, &end, 10);
  while (end != nullptr && (*end == ' ' || *end == '\t')) ++end;
  if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
    c->warnings.push_back(std::string(name) + "=\"" + v + "\" is not an integer in [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]; using " +
                          std::to_string(*out));
    return;
  }
  *out = x;
}

void ReadInt(Config* c, const char* name, int lo, int hi, int* out) {
  int64_t x = *out;
  ReadInt(c, name, static_cast<int64_t>(lo), static_cast<int64_t>(hi), &x);
  *out = static_cast<int>(x);
}

std::string ExeBasename(const std::string& exe) {
  if (!exe.empty()) {
    const char* buf = exe.c_str();
    const char* slash = strrchr(buf, '/');
    std::string base = slash != nullptr ? slash + 1 : buf;
    // A deleted or replaced binary reads "name (deleted)".
    const std::string kDeleted = " (deleted)";
    if (base.size() > kDeleted.size() &&
        base.compare(base.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
      base.resize(base.size() - kDeleted.size());
    }
    if (!base.empty()) return base;
  }
  return "unknown";
}

std::string ExpandPid(const std::string& path, int pid) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 1 < path.size()) {
      if (path[i + 1] == 'p') {
        out += std::to_string(pid);
        ++i;
        continue;
      }
      if (path[i + 1] == '%') {
        out += '%';
        ++i;
        continue;
      }
    }
    out += path[i];
  }
  return out;
}

}  // namespace

namespace {

Config ReadConfigImpl(int pid, const std::string& exe_path) {
  Config c;
  if (const char* v = Env("STACKSTREAM_DISABLE")) {
    std::string s = Trim(v);
    if (s == "1" || s == "true" || s == "yes") {
      c.disabled = true;
    } else if (s != "0" && s != "false" && s != "no") {
      c.warnings.push_back("STACKSTREAM_DISABLE=\"" + s + "\" is not 1 or 0; using 0");
    }
  }
  if (const char* v = Env("STACKSTREAM_COLLECTOR")) {
    std::vector<std::string> addrs = SplitComma(v);
    if (addrs.empty()) {
      c.warnings.push_back(std::string("STACKSTREAM_COLLECTOR=\"") + v +
                           "\" has no address; using 127.0.0.1:7433");
    } else {
      c.collectors = addrs;
      c.collector_set = true;
    }
  }
  if (const char* v = Env("STACKSTREAM_OUTPUT")) c.output = ExpandPid(v, pid);
  if (const char* v = Env("STACKSTREAM_SERVICE")) c.service = Trim(v);
  if (c.service.empty()) c.service = ExeBasename(exe_path);
  if (const char* v = Env("STACKSTREAM_LABELS")) {
    for (const std::string& kv : SplitComma(v)) {
      size_t eq = kv.find('=');
      std::string k = eq == std::string::npos ? "" : Trim(kv.substr(0, eq));
      std::string val = eq == std::string::npos ? "" : Trim(kv.substr(eq + 1));
      if (k.empty()) {
        c.warnings.push_back("STACKSTREAM_LABELS entry \"" + kv +
                             "\" is not k=v; ignoring it");
        continue;
      }
      c.labels.emplace_back(k, val);
    }
  }
  if (const char* v = Env("STACKSTREAM_MODE")) {
    std::string s = Trim(v);
    if (s == "cpu") {
      c.mode = Mode::kCpu;
    } else if (s == "wall") {
      c.mode = Mode::kWall;
    } else {
      c.warnings.push_back("STACKSTREAM_MODE=\"" + s + "\" is not cpu or wall; using cpu");
    }
  }
  ReadInt(&c, "STACKSTREAM_HZ", 1, 10000, &c.hz);
  if (const char* v = Env("STACKSTREAM_PROFILES")) {
    bool cpu = false, heap = false, bad = false;
    for (const std::string& p : SplitComma(v)) {
      if (p == "cpu") cpu = true;
      else if (p == "heap") heap = true;
      else bad = true;
    }
    if (bad || (!cpu && !heap)) {
      c.warnings.push_back(std::string("STACKSTREAM_PROFILES=\"") + v +
                           "\" is not cpu, heap or cpu,heap; using cpu");
    } else {
      c.profile_cpu = cpu;
      c.profile_heap = heap;
    }
  }
  ReadInt(&c, "STACKSTREAM_HEAP_RATE", int64_t{1}, int64_t{1} << 40, &c.heap_rate);
  ReadInt(&c, "STACKSTREAM_FLUSH_MS", 100, 24 * 3600 * 1000, &c.flush_ms);
  ReadInt(&c, "STACKSTREAM_MAX_DEPTH", 4, kMaxDepthLimit, &c.max_depth);
  if (const char* v = Env("STACKSTREAM_LOG")) {
    std::string s = Trim(v);
    if (s == "off" || s == "error" || s == "warn" || s == "info" || s == "debug") {
      c.log_level = s;
    } else {
      c.warnings.push_back("STACKSTREAM_LOG=\"" + s +
                           "\" is not off|error|warn|info|debug; using warn");
    }
  }
  if (const char* v = Env("STACKSTREAM_LOG_FILE")) c.log_file = ExpandPid(v, pid);
  if (const char* v = Env("STACKSTREAM_TOKEN")) c.token = v;
  if (const char* v = Env("STACKSTREAM_TLS_CA")) c.tls_ca = v;
  if (const char* v = Env("STACKSTREAM_CPU_CLOCK")) {
    std::string s = Trim(v);
    if (s == "auto" || s == "perf" || s == "timer") {
      c.cpu_clock = s;
    } else {
      c.warnings.push_back("STACKSTREAM_CPU_CLOCK=\"" + s +
                           "\" is not auto|perf|timer; using auto");
    }
  }
  if (const char* v = Env("STACKSTREAM_SYSTEM_LINES")) c.system_library_lines = Trim(v) == "1";
  ReadInt(&c, "STACKSTREAM_SPOOL_BYTES", int64_t{0}, int64_t{1} << 40, &c.spool_bytes);
  if (const char* v = Env("STACKSTREAM_AGENT_SOCKET")) c.agent_socket = Trim(v);
  return c;
}

}  // namespace

Config ReadConfigFromEnv(int pid) {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exe = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  EnvLookup lookup = [](const char* name) -> const char* { return getenv(name); };
  return ReadConfig(lookup, pid, exe);
}

Config ReadConfig(const EnvLookup& lookup, int pid, const std::string& exe_path) {
  const EnvLookup* saved = t_lookup;
  t_lookup = &lookup;
  Config c = ReadConfigImpl(pid, exe_path);
  t_lookup = saved;
  return c;
}

}  // namespace agent
}  // namespace stackstream
