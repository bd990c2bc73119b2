/* stackstream agent: the optional C API of libstackstream.so.
 *
 * The agent starts by itself when preloaded (LD_PRELOAD) and is configured
 * by STACKSTREAM_* environment variables; programs need not call anything.
 * These calls let a program that links the agent control it at run time.
 * All functions are thread-safe and never block for long; none may be called
 * from a signal handler. */
#ifndef STACKSTREAM_AGENT_H_
#define STACKSTREAM_AGENT_H_

#ifdef __cplusplus
extern "C" {
#endif

/* Starts the agent if it is not running (normally the constructor does it).
 * Also resumes sampling after stackstream_stop(). Returns 0 when sampling. */
int stackstream_start(void);

/* Pauses sampling (timers keep their state; no samples are taken). */
void stackstream_stop(void);

/* Asks the agent to send what it has now instead of at the next flush. */
void stackstream_flush(void);

/* Final flush as at exit, waiting at most about one second; sampling stops. */
void stackstream_shutdown(void);

/* The agent's version, e.g. "0.1.0". */
const char* stackstream_version(void);

#ifdef __cplusplus
}
#endif

#endif /* STACKSTREAM_AGENT_H_ */
