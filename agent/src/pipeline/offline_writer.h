// OfflineWriter: accumulates every summary of the process into one profile
// and writes it as a gzip pprof (STACKSTREAM_OUTPUT) at every Write().
// Uses the project's one pprof encoder (format/pprof_encoder.h).
// The summaries' drop counters, summed, are the pprof comments
// ("stackstream: samples_dropped_ring_full=12", `go tool pprof -comments`).
//
// What is at the path decides how it is written. Nothing that is not a
// regular file is ever replaced, created over or truncated:
//   - A regular file, or nothing: written to PATH.tmp.PID in the same
//     directory, then renamed over PATH (a reader sees the old or the new
//     profile, never half of one). A file that existed keeps its mode, and its
//     owner where the process may chown.
//   - A symbolic link (chain, relative or absolute): resolved, and its final
//     target written as above, in the target's directory; the link stays a
//     link. A dangling link gets its target created.
//   - A character or block device, a FIFO or a socket: opened without O_CREAT
//     or O_TRUNC (a socket: connect()ed, AF_UNIX stream) and written directly,
//     one complete gzip stream per Write() (open, write, close).
//   - Anything reached through a /proc magic link (/dev/stdout, /dev/stderr,
//     /dev/fd/N, /proc/PID/fd/N): never resolved by name; the path is opened
//     as above and written in place, so a pipe or terminal gets the bytes and
//     a regular file behind the descriptor is truncated and rewritten (the
//     same file, not a new one); a socket behind one cannot be reopened and
//     is an error.
//   - A directory, a missing or unwritable directory, a link loop: nothing is
//     touched; Write() returns the error and failures() counts it.
// Direct writes use O_NONBLOCK and never wait longer than
// Options::direct_timeout_ms (250 ms) per Write() in total: a FIFO or socket
// without a reader is retried every 10 ms until then, a reader that stops
// reading is waited for until then; after that the Write() fails (the next
// Write() tries again). 250 ms: the thread that writes is the one draining
// the sample rings (which hold ~300 ms of samples), and the whole exit path
// has 1 s. SIGPIPE is blocked for the calling thread during a direct write
// (a reader that goes away is an EPIPE error, never a signal to the host).
// The type is checked before writing: a path whose type changes between the
// check and the rename/open can still be replaced (not guarded).
//
// Not thread-safe: used by one thread at a time (the stackstream-agent
// session of the host process).
#pragma once

#include <cstdint>
#include <map>
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
  struct Options {
    // Bound on one Write() to a FIFO, socket or device (see above).
    int direct_timeout_ms = 250;
    // What the process profiles (STACKSTREAM_PROFILES). The clock profile
    // goes to the path; the heap profile (the four heap sample types in one
    // pprof, in-use = the latest snapshot) goes to the path when only heap
    // is profiled, else to HeapOutputPath(path).
    bool cpu = true;
    bool heap = false;
  };

  // "x.pb.gz" -> "x.heap.pb.gz", "x.pprof" -> "x.heap.pprof", else "x.heap".
  static std::string HeapOutputPath(const std::string& path);

  explicit OfflineWriter(std::string path);
  OfflineWriter(std::string path, Options options);

  // Adds a summary. REQUIRES: ValidateSummary(summary).ok()
  void Add(const v1::StackSummary& summary);

  // Writes everything added so far to the path (see above). On error nothing
  // but a temporary file of ours is touched (and that is removed).
  Status Write();

  const std::string& path() const { return path_; }
  int64_t total_samples() const { return total_samples_; }
  // Number of Write() calls that failed.
  int64_t failures() const { return failures_; }

 private:
  std::string path_;
  Options options_;
  Status WriteTo(const std::string& path, const std::string& data);

  std::unique_ptr<ProfileBuilder> builder_;
  // Heap: alloc_* accumulate, inuse_* are replaced by every summary's snapshot.
  std::unique_ptr<ProfileBuilder> heap_[4];
  std::map<std::string, int64_t> counters_;  // summed drop counters: pprof comments
  int64_t start_ns_ = 0;
  int64_t end_ns_ = 0;
  int64_t total_samples_ = 0;
  int64_t failures_ = 0;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
