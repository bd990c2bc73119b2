#include "pipeline/pipeline_stats.h"

#include <time.h>
#include <zlib.h>

#include <string>

#include "pipeline/pipeline_log.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

}  // namespace

int64_t GzipSize(const std::string& data) {
  z_stream zs = {};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  int64_t size = rc == Z_STREAM_END ? static_cast<int64_t>(zs.total_out) : -1;
  deflateEnd(&zs);
  return size;
}

PipelineStats::PipelineStats() {
  last_cpu_ns_ = 0;
  last_wall_ns_ = ClockNs(CLOCK_MONOTONIC);
}

void PipelineStats::EndFlush(const v1::StackSummary& summary, int64_t samples, size_t stacks) {
  int64_t cpu = ClockNs(CLOCK_THREAD_CPUTIME_ID);
  int64_t wall = ClockNs(CLOCK_MONOTONIC);
  if (!AgentLog()->should_log(spdlog::level::debug)) {
    last_cpu_ns_ = cpu;
    last_wall_ns_ = wall;
    return;
  }
  std::string bytes = summary.SerializeAsString();
  int64_t gz = GzipSize(bytes);
  total_samples_ += samples;
  total_gzip_bytes_ += gz;
  double cpu_ms_per_s = 0;
  if (last_cpu_ns_ >= 0 && wall > last_wall_ns_) {
    cpu_ms_per_s = (cpu - last_cpu_ns_) / 1e6 / ((wall - last_wall_ns_) / 1e9);
  }
  AgentLog()->debug(
      "pipeline stats: samples={} stacks={} summary_bytes={} gzip_bytes={} "
      "bytes_per_sample={:.3f} total_samples={} total_gzip_bytes={} drain_cpu_ms_per_s={:.3f} "
      "drain_cpu_total_ms={:.1f}",
      samples, stacks, bytes.size(), gz, samples > 0 ? static_cast<double>(gz) / samples : 0.0,
      total_samples_, total_gzip_bytes_, cpu_ms_per_s, cpu / 1e6);
  // Do not count the measurement itself in the next window.
  last_cpu_ns_ = ClockNs(CLOCK_THREAD_CPUTIME_ID);
  last_wall_ns_ = wall;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
