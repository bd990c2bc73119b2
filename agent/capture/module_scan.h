// ModuleScan: the modules loaded in this process (dl_iterate_phdr), as
// capture::ModuleMessage records: path, build-id, load bias, PT_LOAD
// segments, .eh_frame_hdr. Runs on an ordinary thread of the host (it takes
// the loader lock through dl_iterate_phdr): never from a signal handler.
// Allocates nothing; uses only libc.
//
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace capture {

// The loader's load and unload counters (dlpi_adds, dlpi_subs): they change
// on every dlopen/dlclose that maps or unmaps an object.
void LoaderCounters(uint64_t* adds, uint64_t* subs);

// Calls "emit" once per loaded module that has a PT_LOAD segment, with a
// filled ModuleMessage of "generation" (header.size covers the path) and
// the path it names. The vDSO is named kVdsoPath; other objects without a
// file are skipped.
// Returns the number of modules emitted.
using ModuleEmitFn = void (*)(const ModuleMessage& message, const char* path, void* arg);
int ScanModules(uint64_t generation, ModuleEmitFn emit, void* arg);

}  // namespace capture
}  // namespace stackstream
