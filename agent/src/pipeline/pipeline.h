// CreatePipeline: the SampleSink that symbolizes raw stacks, builds portable
// summaries and delivers them (gRPC sender and/or offline pprof writer), as
// configured. Called by the lifecycle code at start and again in a forked
// child (which gets a new agent instance id and its own connection).
#pragma once

#include <memory>

#include "config.h"
#include "sample_sink.h"

namespace stackstream {
namespace agent {

std::unique_ptr<SampleSink> CreatePipeline(const Config& config);

}  // namespace agent
}  // namespace stackstream
