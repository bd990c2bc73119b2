// PprofEncoder: Profile -> pprof (google/pprof profile.proto) bytes.
// The one pprof encoder of the project: the collector's export and the
// agent's offline writer (STACKSTREAM_OUTPUT) both use it.
//
// Written with a small wire-format writer of its own rather than generated
// classes, so the agent registers no descriptor of "perftools.profiles" in a
// host process that may have its own.
//
// Output: sample_type [samples/count, cpu|wall/nanoseconds], period_type
// cpu|wall/nanoseconds, period = Profile::period_nanos; one mapping per
// module (with build-id), one function per (name, file), one location per
// non-inlined frame with its inlined callees as extra lines. Valid for
// `go tool pprof`. Thread-safe (pure functions).
#pragma once

#include <string>

#include "profile.h"

namespace stackstream {

// Serialized, uncompressed profile.proto bytes.
std::string EncodePprof(const Profile& profile);
// gzip-compressed (what `go tool pprof` and the pprof file convention expect).
std::string EncodePprofGzip(const Profile& profile);

}  // namespace stackstream
