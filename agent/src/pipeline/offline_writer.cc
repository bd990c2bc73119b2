#include "pipeline/offline_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"

namespace stackstream {
namespace agent {
namespace pipeline {

OfflineWriter::OfflineWriter(std::string path)
    : path_(std::move(path)), builder_(new ProfileBuilder()) {}

void OfflineWriter::Add(const v1::StackSummary& summary) {
  AddSummaryToProfile(summary, builder_.get());
  if (start_ns_ == 0 || summary.start_time_unix_nanos() < start_ns_) {
    start_ns_ = summary.start_time_unix_nanos();
  }
  if (summary.end_time_unix_nanos() > end_ns_) end_ns_ = summary.end_time_unix_nanos();
  for (const auto& s : summary.samples()) total_samples_ += s.count();
}

Status OfflineWriter::Write() {
  Profile* profile = builder_->mutable_profile();
  profile->start_unix_nanos = start_ns_;
  profile->end_unix_nanos = end_ns_;
  std::string data;
  try {
    data = EncodePprofGzip(*profile);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("encoding pprof: ") + e.what());
  }
  return WriteFileAtomically(path_, data);
}

Status WriteFileAtomically(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create " + tmp + ": " + strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return Status::IOError("cannot write " + tmp + ": " + strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Status::IOError("cannot write " + tmp + ": " + strerror(err));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return Status::IOError("cannot rename " + tmp + " to " + path + ": " + strerror(err));
  }
  return Status::OK();
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
