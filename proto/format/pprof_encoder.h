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
//
// Heap profiles: a Profile of one heap sample type (mode "inuse_space", ...)
// is written with that one sample type; EncodeHeapPprof writes the four
// together, as Go's heap profiles do (alloc_objects/count,
// alloc_space/bytes, inuse_objects/count, inuse_space/bytes; period_type
// space/bytes), so `go tool pprof -sample_index=inuse_space` works.
#pragma once

#include <string>

#include "profile.h"

namespace stackstream {

// Serialized, uncompressed profile.proto bytes.
std::string EncodePprof(const Profile& profile);
// gzip-compressed (what `go tool pprof` and the pprof file convention expect).
std::string EncodePprofGzip(const Profile& profile);

// "by_type[i]" is the profile of kHeapSampleTypes[i] (profile.h); stacks
// present in several are merged into one sample with four values. The time
// window is the union. Gzip-compressed.
std::string EncodeHeapPprofGzip(const Profile* const by_type[4]);

}  // namespace stackstream
