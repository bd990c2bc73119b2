// Sampler: the capture library's engine and lifecycle in the host. One
// instance per process (a forked child gets a new one; the parent's is
// abandoned, never destroyed). It owns the signal, the thread registry, the
// per-thread clocks, the shared-memory rings and the link to
// stackstream-agent, plus one background thread ("ss-capture") that hands
// new rings and module changes to the agent, rescans threads, and
// reconnects when the agent went away. Nothing here unwinds, symbolizes or
// talks to the network: that is stackstream-agent's work.
//
// Thread-safety: all public functions are thread-safe. Agent threads (the
// capture thread) are never sampled.
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

// Starts capture from the ELF constructor: reads the config, connects to (or
// starts) stackstream-agent, installs the handler, registers the calling and
// existing threads, starts the capture thread. Idempotent.
void StartAgent();

// At exit: stops sampling, hands the last rings and modules to the agent and
// says goodbye. Waits (at most ~1 s) only when STACKSTREAM_OUTPUT is set, for
// the agent to have written the file. Idempotent; later calls return at once.
void ShutdownAgent();

// Runtime switch (C API): stop/start taking samples without tearing down.
void SetAgentPaused(bool paused);

// Ask the agent to flush now (C API).
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

// Called before dlclose: make sure the agent knows every module loaded now
// (a module loaded and unloaded between two scans would otherwise never be
// described), without waiting.
void SyncModulesBeforeUnload();

// The real pthread_create (dlsym RTLD_NEXT), for agent-internal threads.
using PthreadCreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
PthreadCreateFn RealPthreadCreate();

}  // namespace agent
}  // namespace stackstream
