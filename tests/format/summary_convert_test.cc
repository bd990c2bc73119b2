#include "format/summary_convert.h"

#include <gtest/gtest.h>

#include "format/validate.h"
#include "test_summaries.h"

namespace stackstream {
namespace {

std::string Names(const Profile& p, const ProfileSample& s) {
  std::string out;
  for (uint32_t f : s.frames) out += (out.empty() ? "" : ";") + p.frames[f].function;
  return out;
}

TEST(SummaryConvert, ExpandsInlineFramesLeafFirst) {
  auto s = testing::MakeValidSummary();
  ASSERT_TRUE(ValidateSummary(s).ok());
  ProfileBuilder b;
  AddSummaryToProfile(s, &b);
  Profile p = b.Release();
  EXPECT_EQ(p.mode, "cpu");
  EXPECT_EQ(p.period_nanos, 10000000);
  EXPECT_EQ(p.start_unix_nanos, 1700000000000000000LL);
  EXPECT_EQ(p.end_unix_nanos, 1700000010000000000LL);
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(Names(p, p.samples[0]), "hot_inner;hot;work;main");
  EXPECT_EQ(p.samples[0].count, 7);
  EXPECT_EQ(Names(p, p.samples[1]), "idle;main");
  EXPECT_EQ(p.samples[1].count, 3);
  const Frame& inner = p.frames[p.samples[0].frames[0]];
  EXPECT_TRUE(inner.inlined);
  EXPECT_EQ(inner.line, 33);
  EXPECT_EQ(inner.file, "demo.cc");
  EXPECT_EQ(inner.module, "/usr/bin/demo");
  EXPECT_EQ(inner.build_id, "abcd1234");
  EXPECT_FALSE(p.frames[p.samples[0].frames[1]].inlined);
  EXPECT_EQ(p.TotalCount(), 10);
}

TEST(SummaryConvert, MergesAcrossSummaries) {
  ProfileBuilder b;
  auto s = testing::MakeValidSummary();
  AddSummaryToProfile(s, &b);
  s.set_start_time_unix_nanos(s.end_time_unix_nanos());
  s.set_end_time_unix_nanos(s.end_time_unix_nanos() + 10000000000LL);
  AddSummaryToProfile(s, &b);
  Profile p = b.Release();
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.samples[0].count, 14);
  EXPECT_EQ(p.samples[1].count, 6);
  EXPECT_EQ(p.end_unix_nanos - p.start_unix_nanos, 20000000000LL);
}

TEST(SummaryConvert, Labels) {
  auto labels = SummaryLabels(testing::MakeValidSummary());
  EXPECT_EQ(labels.size(), 2u);
  EXPECT_EQ(labels["service"], "demo");
  EXPECT_EQ(labels["env"], "test");
}

TEST(ProfileBuilder, SampleLabelsKeepSamplesDistinct) {
  ProfileBuilder b;
  const uint32_t f = b.InternFrame(Frame{"f", "a.cc", 1, "/m", "", false});
  const SampleLabels a = {{"span_id", "a"}}, c = {{"span_id", "c"}};
  b.AddSample({f}, 1, false, a);
  b.AddSample({f}, 2, false, c);
  b.AddSample({f}, 4);
  b.AddSample({f}, 8, false, a);
  Profile p = b.Release();
  ASSERT_EQ(p.samples.size(), 3u);
  EXPECT_EQ(p.samples[0].count, 9);
  EXPECT_EQ(p.samples[0].labels, a);
  EXPECT_EQ(p.samples[1].labels, c);
  EXPECT_TRUE(p.samples[2].labels.empty());
  ProfileBuilder m;
  m.Merge(p);
  m.Merge(p);
  Profile q = m.Release();
  ASSERT_EQ(q.samples.size(), 3u);
  EXPECT_EQ(q.samples[0].count, 18);
  EXPECT_EQ(q.samples[0].labels, a);
}

TEST(ProfileBuilder, MergeReinternsFrames) {
  ProfileBuilder a;
  Frame f1{"f1", "a.cc", 1, "/m", "", false};
  Frame f2{"f2", "a.cc", 2, "/m", "", false};
  a.AddSample({a.InternFrame(f1), a.InternFrame(f2)}, 5);
  Profile pa = a.Release();
  ProfileBuilder b;
  b.AddSample({b.InternFrame(f2)}, 1);
  b.Merge(pa);
  b.Merge(pa);
  Profile p = b.Release();
  ASSERT_EQ(p.frames.size(), 2u);
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.samples[1].count, 10);
  EXPECT_EQ(p.TotalCount(), 11);
}

}  // namespace
}  // namespace stackstream
