// OfflineWriter: accumulates every summary of the process into one profile
// and writes it as a gzip pprof file (STACKSTREAM_OUTPUT), replacing the file
// atomically (temporary file in the same directory + rename).
// Uses the project's one pprof encoder (format/pprof_encoder.h).
//
// Not thread-safe: used by the drain thread (or the exiting thread at
// Shutdown, after the drain thread stopped).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "format/profile.h"
#include "format/status.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace agent {
namespace pipeline {

class OfflineWriter {
 public:
  explicit OfflineWriter(std::string path);

  // Adds a summary. REQUIRES: ValidateSummary(summary).ok()
  void Add(const v1::StackSummary& summary);

  // Writes everything added so far to the file.
  Status Write();

  const std::string& path() const { return path_; }
  int64_t total_samples() const { return total_samples_; }

 private:
  std::string path_;
  std::unique_ptr<ProfileBuilder> builder_;
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t total_samples_ = 0;
};

// Writes "data" to "path" through a temporary file and rename.
Status WriteFileAtomically(const std::string& path, const std::string& data);

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
