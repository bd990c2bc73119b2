// Thread labels: the per-thread key/value pairs a host sets through
// stackstream_set_thread_label() (span_id, trace_id, span_name, ...) and the
// signal handler copies into every clock sample of that thread.
//
// Storage: initial-exec TLS (valid from the thread's first instruction, no
// allocation, no lock), kMaxSampleLabels slots per thread. Each slot is
// double-buffered: the writer (the thread itself) fills the version the
// reader is NOT looking at, then flips the slot's index with one byte store.
// The only reader is the same thread's signal handler (or allocator hook),
// which interrupts the writer at any instruction: it reads the index once and
// copies that version, which the writer is not touching. So a sample always
// carries a whole label (a seqlock cannot serve this: the handler cannot wait
// for the writer it interrupted).
//
// Contract: SetThreadLabel / ClearThreadLabel run on the calling thread only
// and are async-signal-safe themselves; CopyThreadLabels is async-signal-safe
// (no lock, no allocation, no call outside this file) and reads only the
// calling thread's own labels.
#pragma once

#include <cstdint>

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

// 0 on success; -1 with errno EINVAL (bad key or value: see the rules in
// capture_format.h) or ENOSPC (all slots hold other keys).
int SetThreadLabel(const char* key, const char* value);
// 0 on success (also when "key" was not set); -1 with errno EINVAL.
int ClearThreadLabel(const char* key);

// Async-signal-safe. Copies the calling thread's current labels into "rec"
// (rec->label_count and rec->labels).
void CopyThreadLabels(capture::SampleRecord* rec);

}  // namespace agent
}  // namespace stackstream
