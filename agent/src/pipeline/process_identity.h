// What a summary says about the process it came from: identity (service,
// host, pid, executable and its build-id, agent version, a fresh random
// agent instance id) and the static labels, built from the Config.
//
// Thread-safe (pure functions; they read the host name).
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace agent {
namespace pipeline {

// 128 random bits as 32 lower-case hex digits.
std::string NewAgentInstanceId();

// Identity of host process "pid" (executable "exe_path" with "exe_build_id")
// for "config", with a new agent instance id.
v1::ProcessIdentity MakeProcessIdentity(const Config& config, int pid, const std::string& exe_path,
                                        const std::string& exe_build_id);

// Static labels: config.labels (keys that are not valid label names, and the
// reserved "service", are left out with one warning each) plus "host" unless
// given. Sorted by key, keys unique (the last value given wins).
std::vector<v1::Label> MakeLabels(const Config& config, const std::string& host);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
