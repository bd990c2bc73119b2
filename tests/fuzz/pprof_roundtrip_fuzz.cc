// Fuzz target: the pprof encoder. A Profile built from the input (names,
// files, modules, build-ids, inlining, stacks, counts) is encoded; the bytes
// are decoded without a schema and must match it (pprof_check.h), and the
// gzip form must inflate to the same bytes.
#include <fuzzer/FuzzedDataProvider.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "format/pprof_encoder.h"
#include "fuzz_check.h"
#include "pprof_check.h"

namespace {

std::string Gunzip(const std::string& in) {
  z_stream z{};
  FUZZ_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, "inflateInit2");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[65536];
  int r;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    r = inflate(&z, Z_NO_FLUSH);
    FUZZ_CHECK(r == Z_OK || r == Z_STREAM_END, "inflate: %d", r);
    out.append(buf, sizeof buf - z.avail_out);
  } while (r != Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  stackstream::ProfileBuilder builder;
  stackstream::Profile* p = builder.mutable_profile();
  p->mode = in.ConsumeBool() ? "cpu" : "wall";
  p->period_nanos = in.ConsumeIntegralInRange<int64_t>(1, 1000000000);
  p->start_unix_nanos = in.ConsumeIntegral<int64_t>();
  p->end_unix_nanos = in.ConsumeIntegral<int64_t>();
  std::vector<uint32_t> frames;
  const int nframes = in.ConsumeIntegralInRange(1, 64);
  for (int i = 0; i < nframes; ++i) {
    stackstream::Frame f;
    f.function = in.ConsumeRandomLengthString(64);
    f.file = in.ConsumeRandomLengthString(32);
    f.line = in.ConsumeIntegral<int64_t>();
    f.module = in.ConsumeRandomLengthString(32);
    f.build_id = in.ConsumeRandomLengthString(40);
    f.inlined = in.ConsumeBool();
    frames.push_back(builder.InternFrame(f));
  }
  if (in.ConsumeBool()) p->comments.push_back(in.ConsumeRandomLengthString(64));
  while (in.remaining_bytes() > 0) {
    std::vector<uint32_t> stack;
    const int depth = in.ConsumeIntegralInRange(0, 40);
    for (int i = 0; i < depth; ++i) {
      stack.push_back(frames[in.ConsumeIntegralInRange<size_t>(0, frames.size() - 1)]);
    }
    builder.AddSample(stack, in.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 40),
                      in.ConsumeBool());
  }
  stackstream::Profile profile = builder.Release();
  const std::string bytes = stackstream::EncodePprof(profile);
  stackstream::fuzz::CheckPprof(bytes, profile);
  FUZZ_CHECK(Gunzip(stackstream::EncodePprofGzip(profile)) == bytes, "gzip form differs");
  return 0;
}
