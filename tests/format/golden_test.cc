// Golden encoded summaries: bytes written by an earlier version must keep
// decoding with the same meaning. Never regenerate a golden file to make this
// test pass; add a new one next to it instead.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "format/summary_convert.h"
#include "format/validate.h"
#include "stackstream/v1/summary.pb.h"
#include "test_summaries.h"

namespace stackstream {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string GoldenPath(const char* name) { return std::string(STACKSTREAM_GOLDEN_DIR) + "/" + name; }

TEST(Golden, SummaryV1BasicDecodes) {
  const std::string bytes = ReadFile(GoldenPath("summary_v1_basic.binpb"));
  ASSERT_FALSE(bytes.empty()) << "missing golden file";
  v1::StackSummary s;
  ASSERT_TRUE(s.ParseFromString(bytes));
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_EQ(s.schema_version(), 1u);
  EXPECT_EQ(s.process().service(), "demo");
  EXPECT_EQ(s.process().pid(), 4242);
  EXPECT_EQ(s.process().agent_instance_id(), "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(s.mode(), v1::SAMPLING_MODE_CPU);
  EXPECT_EQ(s.period_nanos(), 10000000);
  EXPECT_EQ(s.counters().samples_dropped_ring_full(), 2);
  EXPECT_EQ(s.mappings(0).build_id(), "abcd1234");
  ProfileBuilder b;
  AddSummaryToProfile(s, &b);
  Profile p = b.Release();
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.frames[p.samples[0].frames[0]].function, "hot_inner");
  EXPECT_EQ(p.frames[p.samples[0].frames[3]].function, "main");
  EXPECT_EQ(p.samples[0].count, 7);
  EXPECT_EQ(p.samples[1].count, 3);
  // The golden file and today's builder still describe the same summary.
  EXPECT_EQ(s.SerializeAsString(), testing::MakeValidSummary().SerializeAsString());
}

TEST(Golden, SummaryV1WithUnknownFieldsSurvivesReserialize) {
  // Written by a hypothetical newer agent: has fields 100 (varint) and
  // 101 (string) at top level that this version does not know.
  const std::string bytes = ReadFile(GoldenPath("summary_v1_future_fields.binpb"));
  ASSERT_FALSE(bytes.empty()) << "missing golden file";
  v1::StackSummary s;
  ASSERT_TRUE(s.ParseFromString(bytes));
  EXPECT_TRUE(ValidateSummary(s).ok());
  EXPECT_EQ(s.process().service(), "demo");
  // Unknown fields are kept when re-serialized (proto3 >= 3.5 semantics).
  const std::string again = s.SerializeAsString();
  EXPECT_EQ(again.size(), bytes.size());
  v1::StackSummary s2;
  ASSERT_TRUE(s2.ParseFromString(again));
  EXPECT_EQ(s2.GetReflection()->GetUnknownFields(s2).field_count(), 2);
}

}  // namespace
}  // namespace stackstream
