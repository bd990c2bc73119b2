// CreatePipeline: the SampleSink that symbolizes one host process's raw
// stacks, builds its portable summaries and delivers them (gRPC sender
// and/or offline pprof writer), as its Config asks. stackstream-agent
// creates one per connected host process (a forked child is a process of its
// own, with its own agent instance id and connection).
#pragma once

#include <memory>
#include <string>

#include "config.h"
#include "sample_sink.h"

namespace stackstream {
namespace agent {
namespace pipeline {
class Symbolizer;
}  // namespace pipeline

// What the agent knows of the host process (from its hello).
struct HostProcess {
  int pid = 0;
  std::string executable_path;
  std::string executable_build_id;  // lower-case hex, "" when unknown
};

// "symbolizer" is shared by every session (its cache is per module file)
// and must outlive the sink; the sink uses it from the session's thread.
std::unique_ptr<SampleSink> CreatePipeline(const Config& config, const HostProcess& process,
                                           pipeline::Symbolizer* symbolizer);

}  // namespace agent
}  // namespace stackstream
