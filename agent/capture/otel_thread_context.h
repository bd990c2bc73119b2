// OpenTelemetry thread context (OTEP #4947) reader: a host whose
// OpenTelemetry SDK publishes the active span in the ELF TLS variable
// `otel_thread_ctx_v1` (a pointer to a Thread-Local Context Record: trace-id
// uint8[16], span-id uint8[8], valid uint8, trace-flags uint8,
// attrs-data-size uint16, attrs-data) gets span profiles without calling
// stackstream_set_thread_label: each sample of such a thread carries
// trace_id and span_id (lower-case hex) unless the thread set those keys
// through the C API. Custom attributes (attrs-data, keyed through the
// OTEP 4719 process context) are not read.
//
// Contract: BindOtelThreadContext runs on the thread itself at registration
// (it calls dlsym, which takes the loader lock: never from a signal
// handler). CopyOtelThreadContext is async-signal-safe: it reads the
// thread's own TLS variable, then the record with process_vm_readv (a
// record the SDK freed or unmapped gives EFAULT, never a fault), takes no
// lock and allocates nothing.
#pragma once

#include "capture/capture_format.h"

namespace stackstream {
namespace agent {

// Looks up this thread's `otel_thread_ctx_v1` (nothing when no loaded module
// exports it). Threads created after the module exporting it was loaded, and
// the thread that starts the library, are bound; threads found by scanning
// are not.
void BindOtelThreadContext();

// Async-signal-safe. Adds trace_id / span_id labels from the thread's valid
// record to "rec" (after CopyThreadLabels), when it has free slots.
void CopyOtelThreadContext(capture::SampleRecord* rec);

}  // namespace agent
}  // namespace stackstream
