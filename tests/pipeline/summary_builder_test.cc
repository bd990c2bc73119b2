// SummaryBuilder: dedup, counts, threads, bounds, validation; OfflineWriter:
// the pprof file decodes (through the project's converter and encoder).
#include "pipeline/summary_builder.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "format/validate.h"
#include "pipeline/offline_writer.h"
#include "pipeline/process_identity.h"
#include "test_lib.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

class SummaryBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static TestLib* lib = [] {
      auto* l = new TestLib();
      EXPECT_TRUE(l->Load(PIPELINE_TESTLIB));
      return l;
    }();
    lib_ = lib;
    int line = 0, call_line = 0;
    lib_->hot(&hot_pc_, &line);
    lib_->inlined(&inline_pc_, &line, &call_line);
    Config config;
    config.service = "builder-test";
    config.labels = {{"env", "test"}, {"bad key", "x"}, {"service", "ignored"}};
    identity_ = MakeProcessIdentity(config);
    labels_ = MakeLabels(config, identity_.host());
  }

  std::unique_ptr<SummaryBuilder> NewBuilder(SummaryBuilder::Options options = {}) {
    auto b = std::make_unique<SummaryBuilder>(identity_, labels_, v1::SAMPLING_MODE_CPU, 10000000,
                                              &symbolizer_, &threads_, options);
    b->StartWindow(1700000000000000000LL);
    return b;
  }

  static void Add(SummaryBuilder* b, std::vector<uint64_t> pcs, int32_t tid, uint32_t weight = 1,
                  bool truncated = false) {
    RawSample s;
    s.pcs = pcs.data();
    s.depth = static_cast<uint32_t>(pcs.size());
    s.tid = tid;
    s.weight = weight;
    s.truncated = truncated;
    s.timestamp_ns = 1700000000000000001LL;
    b->Add(s);
  }

  static int64_t Total(const v1::StackSummary& s) {
    int64_t total = 0;
    for (const auto& x : s.samples()) total += x.count();
    return total;
  }

  TestLib* lib_ = nullptr;
  uint64_t hot_pc_ = 0, inline_pc_ = 0;
  v1::ProcessIdentity identity_;
  std::vector<v1::Label> labels_;
  Symbolizer symbolizer_;
  ThreadNames threads_;
};

TEST_F(SummaryBuilderTest, DedupsStacksCountsAndValidates) {
  auto b = NewBuilder();
  // Return addresses: +1 so that pc-1 lands in the function.
  uint64_t ret = hot_pc_ + 1;
  int32_t tid = gettid();
  for (int i = 0; i < 5; ++i) Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid);
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid, /*weight=*/3);
  Add(b.get(), {inline_pc_, ret}, tid);
  Add(b.get(), {inline_pc_, ret}, tid + 1000000);  // another (unknown) thread
  EXPECT_EQ(10, b->window_samples());
  v1::Counters counters;
  counters.set_samples_dropped_ring_full(7);
  v1::StackSummary s;
  b->Finish(counters, 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_EQ(1u, s.schema_version());
  EXPECT_EQ("builder-test", s.process().service());
  EXPECT_EQ(32u, s.process().agent_instance_id().size());
  EXPECT_EQ(getpid(), s.process().pid());
  EXPECT_EQ(1700000000000000000LL, s.start_time_unix_nanos());
  EXPECT_EQ(1700000001000000000LL, s.end_time_unix_nanos());
  EXPECT_EQ(10000000, s.period_nanos());
  EXPECT_EQ(2, s.stacks_size());
  EXPECT_EQ(3, s.samples_size());  // (stack0,t), (stack1,t), (stack1,t2)
  EXPECT_EQ(10, Total(s));
  EXPECT_EQ(7, s.counters().samples_dropped_ring_full());
  EXPECT_EQ(2, s.threads_size());
  // Labels: sorted, "service" and the invalid key left out, host added.
  std::vector<std::string> keys;
  for (const auto& l : s.labels()) keys.push_back(l.key());
  EXPECT_EQ((std::vector<std::string>{"env", "host"}), keys);
  // The inlined location has two lines, callee first.
  bool saw_inline = false;
  for (const auto& loc : s.locations()) {
    if (loc.lines_size() == 2) {
      saw_inline = true;
      EXPECT_EQ("pipeline_test::InlinedCallee(int)",
                s.string_table(s.functions(loc.lines(0).function_index()).name_strindex()));
    }
  }
  EXPECT_TRUE(saw_inline);
  // Next window starts where this one ended, empty.
  v1::StackSummary next;
  b->Finish(v1::Counters(), 1700000002000000000LL, &next);
  EXPECT_EQ(1700000001000000000LL, next.start_time_unix_nanos());
  EXPECT_EQ(0, next.samples_size());
  EXPECT_TRUE(ValidateSummary(next).ok()) << ValidateSummary(next).ToString();
}

TEST_F(SummaryBuilderTest, DistinctStacksAreBoundedAndCounted) {
  SummaryBuilder::Options options;
  options.max_stacks = 100;
  options.reserve_stacks = 10;
  auto b = NewBuilder(options);
  // 1000 distinct stacks, 20 distinct leaves.
  for (int i = 0; i < 1000; ++i) {
    Add(b.get(), {hot_pc_ + (i % 20), hot_pc_ + 1000 + i, hot_pc_ + 5000}, 1, 2);
  }
  v1::StackSummary s;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_LE(s.stacks_size(), 110);
  EXPECT_EQ(2 * 900, s.counters().stacks_dropped_limit());
  // Leaf-only stacks for 10 leaves fit the reserve; the other 10 leaves' samples
  // beyond the bound are dropped.
  int64_t kept = Total(s);
  EXPECT_GE(kept, 2 * 100);
  EXPECT_LT(kept, 2 * 1000);
  int truncated = 0;
  for (const auto& st : s.stacks()) truncated += st.truncated() ? 1 : 0;
  EXPECT_EQ(10, truncated);
}

TEST_F(SummaryBuilderTest, OfflineWriterFileDecodes) {
  auto b = NewBuilder();
  for (int i = 0; i < 4; ++i) Add(b.get(), {hot_pc_, inline_pc_ + 1}, 1);
  v1::StackSummary s1, s2;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s1);
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, 1, 6);
  b->Finish(v1::Counters(), 1700000002000000000LL, &s2);
  std::string path = ::testing::TempDir() + "/offline_writer_test.pb.gz";
  OfflineWriter writer(path);
  writer.Add(s1);
  ASSERT_TRUE(writer.Write().ok());
  writer.Add(s2);
  ASSERT_TRUE(writer.Write().ok());
  EXPECT_EQ(10, writer.total_samples());
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string gz = ss.str();
  ASSERT_GT(gz.size(), 20u);
  EXPECT_EQ('\x1f', gz[0]);
  EXPECT_EQ('\x8b', gz[1]);
  // The file is exactly the project's encoder applied to the merged summaries.
  ProfileBuilder pb;
  AddSummaryToProfile(s1, &pb);
  AddSummaryToProfile(s2, &pb);
  Profile p = pb.Release();
  EXPECT_EQ(10, p.TotalCount());
  bool hot = false;
  for (const auto& f : p.frames) {
    if (f.function == "pipeline_test::HotFunction(int)") {
      hot = true;
      EXPECT_NE(std::string::npos, f.file.find("symbolizer_testlib.cc"));
      EXPECT_GT(f.line, 0);
    }
  }
  EXPECT_TRUE(hot);
  // Decompress and compare with EncodePprof of the same profile.
  std::string raw(1 << 20, '\0');
  z_stream zs = {};
  ASSERT_EQ(Z_OK, inflateInit2(&zs, 15 + 32));
  zs.next_in = reinterpret_cast<Bytef*>(&gz[0]);
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(&raw[0]);
  zs.avail_out = static_cast<uInt>(raw.size());
  ASSERT_EQ(Z_STREAM_END, inflate(&zs, Z_FINISH));
  raw.resize(zs.total_out);
  inflateEnd(&zs);
  p.start_unix_nanos = s1.start_time_unix_nanos();
  p.end_unix_nanos = s2.end_time_unix_nanos();
  EXPECT_EQ(EncodePprof(p), raw);
  unlink(path.c_str());
}


}  // namespace
}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
