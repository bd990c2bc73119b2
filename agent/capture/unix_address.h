// UnixAddress: a Unix socket address from its text form: "@name" (abstract,
// Linux) or a path. Header-only, libc only: used by the capture library, by
// stackstream-agent and by `stackstream run`, which must agree on it.
//
// Thread-safety: a pure function.
#pragma once

#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace stackstream {
namespace capture {

// Fills "*sa" and "*len" for "address". False when it is empty or too long.
inline bool UnixAddress(const std::string& address, sockaddr_un* sa, socklen_t* len) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (address.empty() || address.size() >= sizeof(sa->sun_path)) return false;
  if (address[0] == '@') {
    // Abstract: a leading NUL, then the name (not NUL-terminated).
    memcpy(sa->sun_path + 1, address.data() + 1, address.size() - 1);
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
  } else {
    memcpy(sa->sun_path, address.data(), address.size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + 1);
  }
  return true;
}

}  // namespace capture
}  // namespace stackstream
