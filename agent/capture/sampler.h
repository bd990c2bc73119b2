// Sampler: the agent's sampling engine and lifecycle. One instance per
// process (a forked child gets a new one; the parent's is abandoned, never
// destroyed). It owns the signal, the thread registry, the per-thread
// clocks and the drain thread, which empties the rings, unwinds (remote
// unwinder), feeds the SampleSink (the pipeline), flushes every flush_ms and
// shuts the sink down at exit.
//
// Thread-safety: all public functions are thread-safe. Agent threads (the
// drain thread and every thread it creates, e.g. gRPC's) are never sampled.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <cstdint>

#include "config.h"

namespace stackstream {
namespace agent {

class Sampler;

// The running sampler, or nullptr (not started, disabled, or failed).
Sampler* CurrentSampler();

// Starts the agent from the ELF constructor: reads the config, installs the
// handler, registers the calling and existing threads, starts the drain
// thread. Idempotent.
void StartAgent();

// Final flush at exit: stops sampling, lets the drain thread deliver what is
// left, waits at most ~1 s. Idempotent; later calls return at once.
void ShutdownAgent();

// Runtime switch (C API): stop/start taking samples without tearing down.
void SetAgentPaused(bool paused);

// Ask the drain thread to flush now (C API).
void RequestFlush();

// fork() hooks (pthread_atfork).
void AgentForkPrepare();
void AgentForkParent();
void AgentForkChild();

// True on agent-owned threads (not sampled).
bool IsAgentThread();

// Thread creation hooks for the pthread_create interposer. "Wrap" returns
// the start routine and argument to pass to the real pthread_create; the
// returned argument is owned by the trampoline.
struct ThreadStartWrap {
  void* (*start)(void*);
  void* arg;
};
ThreadStartWrap WrapThreadStart(void* (*start)(void*), void* arg);
// If the real pthread_create failed, frees what WrapThreadStart allocated.
void DiscardThreadStart(const ThreadStartWrap& wrap);

// Called before dlclose: drain the rings while the module is still mapped,
// so its frames resolve. Waits at most "timeout_ms".
void DrainBeforeUnload(int timeout_ms);

// The real pthread_create (dlsym RTLD_NEXT), for agent-internal threads.
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
PthreadCreateFn RealPthreadCreate();

}  // namespace agent
}  // namespace stackstream
