// CreatePipeline as the drain thread drives it: samples in, Flush writes the
// offline pprof file (replaced each time) and sends to the collector, the
// final Shutdown delivers the last summary within its deadline.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "fake_ingest_server.h"
#include "test_lib.h"

namespace stackstream {
namespace agent {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PipelineTest, OfflineFileAndCollectorGetTheSamples) {
  pipeline::TestLib lib;
  ASSERT_TRUE(lib.Load(PIPELINE_TESTLIB));
  uint64_t pc = 0;
  int line = 0;
  lib.hot(&pc, &line);

  stackstream::testing::FakeIngestServer server;
  ASSERT_TRUE(server.Start());
  Config config;
  config.service = "pipeline-test";
  config.collectors = {server.address()};
  config.collector_set = true;
  config.output = ::testing::TempDir() + "/pipeline_test_" + std::to_string(getpid()) + ".pb.gz";
  unlink(config.output.c_str());
  auto sink = CreatePipeline(config);
  ASSERT_NE(nullptr, sink);

  uint64_t pcs[2] = {pc, pc + 1};
  RawSample s;
  s.pcs = pcs;
  s.depth = 2;
  s.tid = gettid();
  s.weight = 1;
  for (int i = 0; i < 50; ++i) sink->OnSample(s);
  SamplingCounters delta;
  delta.samples_dropped_ring_full = 2;
  sink->Flush(delta);
  struct stat st;
  ASSERT_EQ(0, stat(config.output.c_str(), &st)) << "flush writes the file";
  std::string first = ReadFile(config.output);
  ASSERT_GE(first.size(), 2u);
  EXPECT_EQ('\x1f', first[0]);
  EXPECT_EQ('\x8b', first[1]);
  ASSERT_TRUE(server.WaitFor([&] { return server.stored_samples() == 50; }, 10000));

  for (int i = 0; i < 25; ++i) sink->OnSample(s);
  int64_t t0 = MonotonicNs();
  sink->Shutdown(SamplingCounters(), t0 + 1000000000LL);
  EXPECT_LT(MonotonicNs() - t0, 1100000000LL);
  EXPECT_EQ(75, server.stored_samples()) << "the final summary is delivered at shutdown";
  EXPECT_EQ((std::set<uint64_t>{1, 2}), server.stored());
  ASSERT_FALSE(server.counters().empty());
  EXPECT_EQ(2, server.counters()[0].samples_dropped_ring_full());
  std::string last = ReadFile(config.output);
  EXPECT_NE(first, last) << "the file is replaced at shutdown with all samples";
  // No temporary files left behind.
  EXPECT_NE(0, stat((config.output + ".tmp." + std::to_string(getpid())).c_str(), &st));
  unlink(config.output.c_str());
}

TEST(PipelineTest, DeadCollectorDoesNotDelayShutdownMuch) {
  Config config;
  config.service = "pipeline-test";
  config.collectors = {"127.0.0.1:1"};
  config.collector_set = true;
  auto sink = CreatePipeline(config);
  uint64_t pcs[1] = {reinterpret_cast<uint64_t>(&MonotonicNs)};
  RawSample s;
  s.pcs = pcs;
  s.depth = 1;
  s.tid = gettid();
  for (int i = 0; i < 10; ++i) sink->OnSample(s);
  int64_t t0 = MonotonicNs();
  sink->Flush(SamplingCounters());
  EXPECT_LT(MonotonicNs() - t0, 200000000LL) << "Flush never waits on the network";
  sink->Shutdown(SamplingCounters(), MonotonicNs() + 300000000LL);
  EXPECT_LT(MonotonicNs() - t0, 700000000LL);
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
