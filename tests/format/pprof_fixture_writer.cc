// Writes a gzip pprof of a known Profile with EncodePprofGzip, for
// test_pprof_consumers.py (checked by tests/lib/pprof.py and `go tool pprof`).
//   pprof_fixture_writer OUT.pb.gz
// Profile: main->work->hot (+ hot_inner inlined into hot) x 70,
//          main->idle x 30, a truncated main->deep x 5; period 10 ms, cpu;
//          two comments (as the collector writes the agents' drop counters).
#include <fstream>
#include <iostream>

#include "format/pprof_encoder.h"
#include "format/profile.h"

int main(int argc, char** argv) {
  using stackstream::Frame;
  if (argc != 2) {
    std::cerr << "usage: pprof_fixture_writer OUT\n";
    return 2;
  }
  stackstream::ProfileBuilder b;
  auto* p = b.mutable_profile();
  p->mode = "cpu";
  p->period_nanos = 10000000;
  p->start_unix_nanos = 1700000000000000000LL;
  p->end_unix_nanos = 1700000001000000000LL;
  const std::string mod = "/usr/bin/demo";
  uint32_t main_f = b.InternFrame(Frame{"main", "demo.cc", 12, mod, "abcd", false});
  uint32_t work = b.InternFrame(Frame{"work(int)", "demo.cc", 22, mod, "abcd", false});
  uint32_t hot = b.InternFrame(Frame{"hot", "demo.cc", 31, mod, "abcd", false});
  uint32_t inner = b.InternFrame(Frame{"hot_inner", "demo.cc", 33, mod, "abcd", true});
  uint32_t idle = b.InternFrame(Frame{"idle", "idle.cc", 44, "/lib/libc.so.6", "", false});
  uint32_t deep = b.InternFrame(Frame{"deep", "demo.cc", 50, mod, "abcd", false});
  b.AddSample({inner, hot, work, main_f}, 70);
  b.AddSample({idle, main_f}, 30);
  b.AddSample({deep, main_f}, 5, /*truncated=*/true);
  p->comments = {"stackstream: samples_dropped_ring_full=12",
                 "stackstream: unwind_failures=3"};
  std::ofstream out(argv[1], std::ios::binary);
  out << stackstream::EncodePprofGzip(b.Release());
  return out.good() ? 0 : 1;
}
