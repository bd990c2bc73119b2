// libstackstream.so entry points: the ELF constructor and exit hooks, the
// fork hooks, the interposed pthread_create / dlclose, and the exported C API
// (include/stackstream/agent.h). Everything else lives in src/sampling/.
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "pipeline/sender.h"
#include "capture/sampler.h"
#include "stackstream/agent.h"

#define STACKSTREAM_EXPORT __attribute__((visibility("default")))

namespace stackstream {
namespace agent {
// Defined with the fork code in sampling/sampler.cc: marks the calling
// thread so that threads it creates are registered as agent threads.
bool SetCreatingAgentThreads(bool on);
}  // namespace agent
}  // namespace stackstream

namespace {

using stackstream::agent::ShutdownAgent;
namespace pipeline = stackstream::agent::pipeline;

void AtExit() { ShutdownAgent(); }

// gRPC's fork handling (pipeline::GrpcFork*: gate the sender out of gRPC,
// note whether it was in, run gRPC's own fork handlers). Registered after
// the sampler's handlers, so this prepare runs first and the parent/child
// handlers last (the child's new sampler exists when gRPC restarts its
// threads). The threads gRPC restarts on the forking thread are marked as
// agent threads.
thread_local bool t_was_creating_agent_threads = false;

void GrpcGuardPrepare() {
  t_was_creating_agent_threads = stackstream::agent::SetCreatingAgentThreads(true);
  pipeline::GrpcForkPrepare();
}

void GrpcGuardParent() {
  pipeline::GrpcForkParent();
  stackstream::agent::SetCreatingAgentThreads(t_was_creating_agent_threads);
}

void GrpcGuardChild() {
  pipeline::GrpcForkChild();
  stackstream::agent::SetCreatingAgentThreads(t_was_creating_agent_threads);
}

__attribute__((constructor)) void StackstreamConstructor() {
  // Resolve the real functions before any thread can need them.
  stackstream::agent::RealPthreadCreate();
  // Registered before the gRPC handlers below: see GrpcGuardPrepare.
  pthread_atfork(&stackstream::agent::AgentForkPrepare, &stackstream::agent::AgentForkParent,
                 &stackstream::agent::AgentForkChild);
  // gRPC fork support, so that children forked after the parent streamed can
  // stream too. gRPC itself is initialized lazily by the sender's first send
  // (its threads are then agent threads, created from the sender thread).
  stackstream::agent::StartAgent();
  if (stackstream::agent::CurrentSampler() != nullptr && pipeline::InitGrpcForkSupport()) {
    pthread_atfork(&GrpcGuardPrepare, &GrpcGuardParent, &GrpcGuardChild);
  }
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

// Interposed so that samples in a module are drained (and symbolized) while
// the module is still mapped.
STACKSTREAM_EXPORT int dlclose(void* handle) {
  stackstream::agent::DrainBeforeUnload(100);
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

}  // extern "C"
