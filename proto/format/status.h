// Status: the result of an operation that can fail, carried across module
// boundaries instead of exceptions (leveldb style). Cheap to copy when ok.
// Thread-safe for concurrent const access.
#pragma once

#include <string>
#include <utility>

namespace stackstream {

class Status {
 public:
  enum Code {
    kOk = 0,
    kInvalidArgument = 1,
    kResourceExhausted = 2,
    kNotFound = 3,
    kIOError = 4,
    kCorruption = 5,
    kUnavailable = 6,
    kUnauthenticated = 7,
    kInternal = 8,
  };

  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(kInvalidArgument, std::move(msg)); }
  static Status ResourceExhausted(std::string msg) { return Status(kResourceExhausted, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(kNotFound, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(kIOError, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(kCorruption, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(kUnavailable, std::move(msg)); }
  static Status Unauthenticated(std::string msg) { return Status(kUnauthenticated, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(kInternal, std::move(msg)); }

  bool ok() const { return code_ == kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = kOk;
  std::string message_;
};

}  // namespace stackstream
