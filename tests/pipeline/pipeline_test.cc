// CreatePipeline as a stackstream-agent session drives it: samples in, Flush
// writes the offline pprof file (replaced each time) and sends to the
// collector, Finish delivers the last summary within its deadline.
#include "pipeline/pipeline.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "capture/module_scan.h"
#include "fake_ingest_server.h"
#include "pipeline/symbolizer.h"
#include "test_lib.h"
#include "unwind/module_set.h"

namespace stackstream {
namespace agent {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// This process's modules, recorded the way the capture library records them.
std::shared_ptr<const ModuleSet> SelfModules() {
  std::vector<std::string> messages;
  capture::ScanModules(
      1,
      [](const capture::ModuleMessage& m, const char* path, void* arg) {
        std::string raw(reinterpret_cast<const char*>(&m), sizeof m);
        raw.append(path);
        raw.push_back('\0');
        static_cast<std::vector<std::string>*>(arg)->push_back(raw);
      },
      &messages);
  return ModuleSet::FromMessages(messages, "");
}

HostProcess Self() {
  HostProcess p;
  p.pid = getpid();
  p.executable_path = "/proc/self/exe";
  return p;
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
  pipeline::Symbolizer symbolizer;
  auto sink = CreatePipeline(config, Self(), &symbolizer);
  ASSERT_NE(nullptr, sink);
  auto modules = SelfModules();

  uint64_t pcs[2] = {pc, pc + 1};
  RawSample s;
  s.pcs = pcs;
  s.depth = 2;
  s.tid = gettid();
  s.weight = 1;
  s.modules = modules.get();
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
  sink->Flush(SamplingCounters());
  sink->Finish(t0 + 1000000000LL);
  EXPECT_LT(MonotonicNs() - t0, 1100000000LL);
  EXPECT_EQ(75, server.stored_samples()) << "the final summary is delivered by Finish";
  EXPECT_EQ((std::set<uint64_t>{1, 2}), server.stored());
  ASSERT_FALSE(server.counters().empty());
  EXPECT_EQ(2, server.counters()[0].samples_dropped_ring_full());
  std::string last = ReadFile(config.output);
  EXPECT_NE(first, last) << "the file is replaced at shutdown with all samples";
  // No temporary files left behind.
  EXPECT_NE(0, stat((config.output + ".tmp." + std::to_string(getpid())).c_str(), &st));
  unlink(config.output.c_str());
}

TEST(PipelineTest, DeadCollectorDoesNotDelayFinishMuch) {
  Config config;
  config.service = "pipeline-test";
  config.collectors = {"127.0.0.1:1"};
  config.collector_set = true;
  pipeline::Symbolizer symbolizer;
  auto sink = CreatePipeline(config, Self(), &symbolizer);
  auto modules = SelfModules();
  uint64_t pcs[1] = {reinterpret_cast<uint64_t>(&MonotonicNs)};
  RawSample s;
  s.pcs = pcs;
  s.depth = 1;
  s.tid = gettid();
  s.modules = modules.get();
  for (int i = 0; i < 10; ++i) sink->OnSample(s);
  int64_t t0 = MonotonicNs();
  sink->Flush(SamplingCounters());
  EXPECT_LT(MonotonicNs() - t0, 200000000LL) << "Flush never waits on the network";
  sink->Finish(MonotonicNs() + 300000000LL);
  EXPECT_LT(MonotonicNs() - t0, 700000000LL);
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
