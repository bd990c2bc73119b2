/* stackstream agent: the optional C API of libstackstream.so.
 *
 * The agent starts by itself when preloaded (LD_PRELOAD) and is configured
 * by STACKSTREAM_* environment variables; programs need not call anything.
 * These calls let a program that links the agent control it at run time.
 * All functions are thread-safe and never block for long; none may be called
 * from a signal handler, except the thread-label calls. */
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

/* Thread labels (span profiles). Sets "key" to "value" on the calling thread:
 * every CPU/wall sample the thread takes from now on carries the pair as a
 * sample label (pprof Sample.label; selectable as {span_id="..."}; Grafana's
 * traces-to-profiles reads span_id). Conventional keys: "span_id",
 * "trace_id" (lower-case hex, as OpenTelemetry prints them), "span_name".
 * At most STACKSTREAM_MAX_THREAD_LABELS keys per thread; a key is 1-31 bytes
 * of [A-Za-z0-9_.] starting with a letter or '_', a value 0-63 bytes of
 * printable ASCII. Cheap (tens of nanoseconds: no lock, no allocation, no
 * system call), async-signal-safe, and a sample never carries half a value.
 * Returns 0, or -1 with errno EINVAL (bad key or value) or ENOSPC (every
 * slot holds another key). Works whether the program links the library or
 * it is only preloaded (look the functions up with dlsym(RTLD_DEFAULT, ...);
 * when they are absent, profiling is off and there is nothing to do).
 * Each call changes one label: to switch spans, clear span_id first and set
 * it last, so that a sample that has a span_id has that span's other labels. */
#define STACKSTREAM_MAX_THREAD_LABELS 4
int stackstream_set_thread_label(const char* key, const char* value);

/* Removes "key" from the calling thread's labels (0 also when it was not
 * set; -1 with errno EINVAL for a bad key). Same cost and safety as above. */
int stackstream_clear_thread_label(const char* key);

#ifdef __cplusplus
}
#endif

#endif /* STACKSTREAM_AGENT_H_ */
