// SharedMemfd: the host's shared memory for stackstream-agent (control
// block, rings, heap table): a memfd of a fixed size, sealed at that size (the
// agent refuses unsealed ones: a shrink could SIGBUS it), mapped read-write.
// Not async-signal-safe (system calls that may fail with errno set); called
// from the sampler's setup paths only.
#pragma once

#include <cstdint>

namespace stackstream {
namespace capture {

// Creates the memfd "name" of "bytes" (zero-filled), seals it and maps it at
// *mem. Returns the fd, or -1 with nothing left open (errno set).
int CreateSharedMemfd(const char* name, uint64_t bytes, void** mem);

}  // namespace capture
}  // namespace stackstream
