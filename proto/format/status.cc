#include "status.h"

namespace stackstream {

std::string Status::ToString() const {
  static const char* const kNames[] = {"OK",          "InvalidArgument", "ResourceExhausted",
                                       "NotFound",    "IOError",         "Corruption",
                                       "Unavailable", "Unauthenticated", "Internal"};
  if (ok()) return "OK";
  return std::string(kNames[code_]) + ": " + message_;
}

}  // namespace stackstream
