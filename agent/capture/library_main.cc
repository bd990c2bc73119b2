// libstackstream.so entry points: the ELF constructor and exit hooks, the
// fork hooks, the interposed pthread_create / dlclose, and the exported C API
// (include/stackstream/agent.h). Everything else lives in this folder; the
// library needs only libc (see agent/CMakeLists.txt).
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "capture/sampler.h"
#include "capture/thread_labels.h"
#include "stackstream/agent.h"

#define STACKSTREAM_EXPORT __attribute__((visibility("default")))

namespace {

using stackstream::agent::ShutdownAgent;

void AtExit() { ShutdownAgent(); }

__attribute__((constructor)) void StackstreamConstructor() {
  // Resolve the real functions before any thread can need them.
  stackstream::agent::RealPthreadCreate();
  pthread_atfork(&stackstream::agent::AgentForkPrepare, &stackstream::agent::AgentForkParent,
                 &stackstream::agent::AgentForkChild);
  stackstream::agent::StartAgent();
  atexit(&AtExit);
}

// Backstop when atexit handlers did not run ours (e.g. unusual exit paths).
__attribute__((destructor)) void StackstreamDestructor() { ShutdownAgent(); }

using DlcloseFn = int (*)(void*);
DlcloseFn RealDlclose() {
  static DlcloseFn fn = reinterpret_cast<DlcloseFn>(dlsym(RTLD_NEXT, "dlclose"));
  return fn;
}

}  // namespace

extern "C" {

// Interposed so that every new thread is registered (and timed) before its
// start routine runs, and agent threads are marked as such.
STACKSTREAM_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                      void* (*start)(void*), void* arg) {
  stackstream::agent::PthreadCreateFn real = stackstream::agent::RealPthreadCreate();
  if (real == nullptr) return EAGAIN;
  stackstream::agent::ThreadStartWrap wrap = stackstream::agent::WrapThreadStart(start, arg);
  int rc = real(thread, attr, wrap.start, wrap.arg);
  if (rc != 0) stackstream::agent::DiscardThreadStart(wrap);
  return rc;
}

// Interposed so that the agent has the module's description (path,
// build-id, segments) before it is unmapped: its samples are unwound and
// symbolized later, from the file.
STACKSTREAM_EXPORT int dlclose(void* handle) {
  stackstream::agent::SyncModulesBeforeUnload();
  DlcloseFn real = RealDlclose();
  return real != nullptr ? real(handle) : -1;
}

STACKSTREAM_EXPORT int stackstream_start(void) {
  stackstream::agent::StartAgent();
  if (stackstream::agent::CurrentSampler() == nullptr) return -1;
  stackstream::agent::SetAgentPaused(false);
  return 0;
}

STACKSTREAM_EXPORT void stackstream_stop(void) { stackstream::agent::SetAgentPaused(true); }

STACKSTREAM_EXPORT void stackstream_flush(void) { stackstream::agent::RequestFlush(); }

STACKSTREAM_EXPORT void stackstream_shutdown(void) { ShutdownAgent(); }

STACKSTREAM_EXPORT const char* stackstream_version(void) { return "0.1.0"; }

STACKSTREAM_EXPORT int stackstream_set_thread_label(const char* key, const char* value) {
  return stackstream::agent::SetThreadLabel(key, value);
}

STACKSTREAM_EXPORT int stackstream_clear_thread_label(const char* key) {
  return stackstream::agent::ClearThreadLabel(key);
}

}  // extern "C"
