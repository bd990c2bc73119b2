// HostLog: the capture library's logger. One line per message, written with
// write(2) to stderr or STACKSTREAM_LOG_FILE; never to stdout; no
// allocation. Levels as STACKSTREAM_LOG: off, error, warn (default), info,
// debug. Never call from a signal handler (it formats with vsnprintf).
//
// Thread-safety: all functions are thread-safe. After fork() the child keeps
// the settings (the file descriptor is inherited).
#pragma once

#include <cstdint>

namespace stackstream {
namespace agent {

enum class HostLogLevel { kOff = 0, kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

// Sets the level and destination ("file" empty: stderr). Call at start.
void InitHostLog(const char* level, const char* file);

bool HostLogEnabled(HostLogLevel level);

// printf-style; prefixes "stackstream[pid]: <level>: ".
void HostLog(HostLogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// At most one message per "key" slot for the life of the process (key < 64).
void HostLogOnce(int key, HostLogLevel level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Keys for HostLogOnce.
enum HostLogKey {
  kLogKeyNoAgent = 1,
  kLogKeyTimerFailed,
  kLogKeyRingFailed,
  kLogKeySendFailed,
  kLogKeyReconnect,
  kLogKeyHandlerReplaced,
  kLogKeyNoSignal,
  kLogKeyThread,
  kLogKeyConfig,
};

}  // namespace agent
}  // namespace stackstream
