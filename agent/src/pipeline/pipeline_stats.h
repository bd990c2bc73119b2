// PipelineStats: what the pipeline costs, logged at debug level once per
// flush: the session thread's CPU time per second of wall time (measured on
// the calling thread's CPU clock: call it on that thread), and the size
// of each summary serialized and gzip-compressed (bytes on the wire per
// sample, as gRPC's gzip message compression would send it).
//
// Not thread-safe: used by one session thread.
#pragma once

#include <cstdint>

#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace agent {
namespace pipeline {

class PipelineStats {
 public:
  PipelineStats();
  void BeginFlush() {}
  // Logs one debug line for the window just closed (when debug is enabled).
  void EndFlush(const v1::StackSummary& summary, int64_t samples, size_t stacks);

 private:
  int64_t last_cpu_ns_ = 0;
  int64_t last_wall_ns_ = 0;
  int64_t total_samples_ = 0;
  int64_t total_gzip_bytes_ = 0;
};

// gzip-compressed size of "data" (zlib level 6, the gzip default).
int64_t GzipSize(const std::string& data);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
