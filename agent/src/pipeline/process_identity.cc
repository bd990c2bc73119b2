#include "pipeline/process_identity.h"

#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <map>
#include <random>

#include "pipeline/pipeline_log.h"

#ifndef STACKSTREAM_VERSION
#define STACKSTREAM_VERSION "0.0.0"
#endif

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

bool ValidLabelKey(const std::string& key) {
  if (key.empty() || key.size() > 128) return false;
  auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!head(key[0])) return false;
  for (char c : key) {
    if (!head(c) && !(c >= '0' && c <= '9') && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string NewAgentInstanceId() {
  unsigned char bytes[16];
  ssize_t n = getrandom(bytes, sizeof bytes, GRND_NONBLOCK);
  if (n != static_cast<ssize_t>(sizeof bytes)) {
    // Fallback: mix time, pid and an address.
    std::seed_seq seed{static_cast<unsigned>(time(nullptr)), static_cast<unsigned>(getpid()),
                       static_cast<unsigned>(clock()),
                       static_cast<unsigned>(reinterpret_cast<uintptr_t>(&n))};
    std::mt19937_64 rng(seed);
    for (auto& b : bytes) b = static_cast<unsigned char>(rng());
  }
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

v1::ProcessIdentity MakeProcessIdentity(const Config& config, int pid, const std::string& exe,
                                        const std::string& exe_build_id) {
  v1::ProcessIdentity id;
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string service = config.service;
  if (service.empty()) {
    std::string path(exe);
    size_t slash = path.rfind('/');
    service = slash == std::string::npos ? path : path.substr(slash + 1);
    if (service.empty()) service = "unknown";
  }
  id.set_service(service);
  id.set_host(host);
  id.set_pid(pid);
  id.set_executable_path(exe);
  id.set_executable_build_id(exe_build_id);
  id.set_agent_version(STACKSTREAM_VERSION);
  id.set_agent_instance_id(NewAgentInstanceId());
  return id;
}

std::vector<v1::Label> MakeLabels(const Config& config, const std::string& host) {
  std::map<std::string, std::string> labels;
  if (!host.empty()) labels["host"] = host;
  for (const auto& [key, value] : config.labels) {
    if (key == "service" || !ValidLabelKey(key)) {
      PipelineLog("bad_label." + key, spdlog::level::warn,
                  "STACKSTREAM_LABELS: label '{}' left out (reserved or not a valid label name)",
                  key);
      continue;
    }
    labels[key] = value.size() > 1024 ? value.substr(0, 1024) : value;
  }
  std::vector<v1::Label> result;
  for (const auto& [key, value] : labels) {
    v1::Label l;
    l.set_key(key);
    l.set_value(value);
    result.push_back(std::move(l));
  }
  return result;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
