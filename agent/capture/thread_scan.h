// What /proc and pthreads say about this process's threads: the list of
// thread ids, a thread's stack bounds, whether a thread blocks a signal.
// Not for use in a signal handler (they allocate and do I/O).
//
// Thread-safety: all functions are thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

namespace stackstream {
namespace agent {

// Thread ids in /proc/self/task (empty on failure).
std::vector<pid_t> ListThreadIds();

// The calling thread's stack [*lo, *hi) from pthread_getattr_np.
bool CurrentThreadStackBounds(uint64_t* lo, uint64_t* hi);

// The mapping in /proc/self/maps that contains "addr" (for threads found by
// scanning, whose pthread attributes are unknown).
bool FindMappingContaining(uint64_t addr, uint64_t* lo, uint64_t* hi);

// Reads SigBlk of /proc/self/task/<tid>/status. False if unreadable.
bool ThreadBlocksSignal(pid_t tid, int signo, bool* blocked);

// Whether the calling thread currently blocks "signo".
bool CurrentThreadBlocksSignal(int signo);

pid_t CurrentTid();

}  // namespace agent
}  // namespace stackstream
