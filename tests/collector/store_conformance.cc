#include "store_conformance.h"

#include <atomic>
#include <sstream>
#include <thread>

namespace stackstream {
namespace collector {
namespace testing {

std::string EngineName(const ::testing::TestParamInfo<StoreEngine>& info) {
  return info.param.name;
}

SummaryRecord MakeRecord(const std::string& instance, uint64_t sequence,
                         const std::string& service, const Labels& labels, int64_t start,
                         const std::vector<FoldedStack>& stacks, const std::string& mode) {
  SummaryRecord r;
  r.agent_instance_id = instance;
  r.sequence = sequence;
  r.service = service;
  r.labels = labels;
  r.labels["service"] = service;
  // A "pid" label is the process's pid, as the ingest service stores it (a
  // process label, never a series label: process_labels.h).
  auto pid = r.labels.find("pid");
  if (pid != r.labels.end()) {
    r.pid = std::stoll(pid->second);
    r.labels.erase(pid);
  }
  ProfileBuilder b;
  Profile* p = b.mutable_profile();
  p->mode = mode;
  p->period_nanos = 10000000;
  p->start_unix_nanos = start;
  p->end_unix_nanos = start + 10 * kSecond;
  for (const FoldedStack& fs : stacks) {
    std::vector<std::string> names;
    std::stringstream ss(fs.stack);
    std::string item;
    while (std::getline(ss, item, ';')) names.push_back(item);
    std::vector<uint32_t> frames;
    for (size_t depth = names.size(); depth-- > 0;) {  // leaf first
      Frame f;
      f.function = names[depth];
      f.file = names[depth] + ".cc";
      f.line = 10 * static_cast<int64_t>(depth + 1);
      f.module = "/usr/bin/" + service;
      f.build_id = "b1d0";
      frames.push_back(b.InternFrame(f));
    }
    b.AddSample(frames, fs.count, fs.truncated, fs.labels);
  }
  r.profile = b.Release();
  return r;
}

std::map<std::string, int64_t> Folded(const Profile& profile) {
  std::map<std::string, int64_t> out;
  for (const ProfileSample& s : profile.samples) {
    std::string line;
    for (size_t i = s.frames.size(); i-- > 0;) {
      if (!line.empty()) line += ";";
      line += profile.frames[s.frames[i]].function;
    }
    out[line] += s.count;
  }
  return out;
}

void StoreConformanceTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  key_ = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : key_) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  if (GetParam().destroy) GetParam().destroy(key_);
  Status s = GetParam().open(key_, &store_);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void StoreConformanceTest::TearDown() {
  store_.reset();
  if (GetParam().destroy) GetParam().destroy(key_);
}

void StoreConformanceTest::Reopen() {
  store_.reset();
  Status s = GetParam().open(key_, &store_);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void StoreConformanceTest::Write(const SummaryRecord& record, bool expect_duplicate) {
  bool duplicate = !expect_duplicate;
  Status s = store_->Write(record, &duplicate);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(duplicate, expect_duplicate) << record.agent_instance_id << "/" << record.sequence;
}

Profile StoreConformanceTest::QueryProfile(const std::string& service, int64_t from, int64_t to,
                                           const std::vector<LabelMatcher>& matchers,
                                           const std::string& mode) {
  ProfileQuery q;
  q.service = service;
  q.from_unix_nanos = from;
  q.to_unix_nanos = to;
  q.matchers = matchers;
  q.mode = mode;
  Profile p;
  Status s = store_->Query(q, &p);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return p;
}

std::map<std::string, int64_t> StoreConformanceTest::QueryCounters(
    const std::string& service, int64_t from, int64_t to,
    const std::vector<LabelMatcher>& matchers, const std::string& mode) {
  ProfileQuery q;
  q.service = service;
  q.from_unix_nanos = from;
  q.to_unix_nanos = to;
  q.matchers = matchers;
  q.mode = mode;
  std::map<std::string, int64_t> out = {{"stale", 1}};  // must be cleared
  Status s = store_->Counters(q, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

namespace {

const int64_t kHour = 3600 * kSecond;

using CounterMap = std::map<std::string, int64_t>;

SummaryRecord WithCounters(SummaryRecord r, const CounterMap& counters) {
  r.counters = counters;
  return r;
}

LabelMatcher M(const std::string& name, LabelMatcher::Op op, const std::string& value) {
  LabelMatcher m;
  m.name = name;
  m.op = op;
  m.value = value;
  return m;
}

}  // namespace

TEST_P(StoreConformanceTest, WriteThenQueryReturnsExactCountsAndFrames) {
  Write(MakeRecord("a1", 1, "api", {{"env", "prod"}}, kT0,
                   {{"main;work;hot", 7}, {"main;idle", 3}}));
  Profile p = QueryProfile("api", kT0, kT0 + kHour);
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;work;hot", 7}, {"main;idle", 3}}));
  EXPECT_EQ(p.TotalCount(), 10);
  EXPECT_EQ(p.mode, "cpu");
  EXPECT_EQ(p.period_nanos, 10000000);
  ASSERT_FALSE(p.frames.empty());
  for (const ProfileSample& s : p.samples) {
    const Frame& leaf = p.frames[s.frames[0]];
    if (leaf.function == "hot") {
      EXPECT_EQ(leaf.file, "hot.cc");
      EXPECT_EQ(leaf.line, 30);
      EXPECT_EQ(leaf.module, "/usr/bin/api");
      EXPECT_EQ(leaf.build_id, "b1d0");
      EXPECT_FALSE(leaf.inlined);
      EXPECT_EQ(p.frames[s.frames[2]].function, "main");
    }
  }
  // Another service sees nothing.
  EXPECT_EQ(QueryProfile("web", kT0, kT0 + kHour).TotalCount(), 0);
}

TEST_P(StoreConformanceTest, FrameFieldsAndTruncationRoundTrip) {
  SummaryRecord r = MakeRecord("a1", 1, "api", {}, kT0, {});
  ProfileBuilder b;
  b.mutable_profile()->start_unix_nanos = kT0;
  b.mutable_profile()->end_unix_nanos = kT0 + kSecond;
  b.mutable_profile()->mode = "wall";
  b.mutable_profile()->period_nanos = 1000000;
  Frame inner{"inner_inlined", "/src/x.h", 12, "/lib/libx.so", "00ff", true};
  Frame outer{"outer", "/src/x.cc", 0, "/lib/libx.so", "00ff", false};
  Frame unknown{"libc.so.6+0x1f00", "", 0, "/lib/libc.so.6", "", false};
  Frame unicode{"ns::f<std::vector<int>>(int) const [ü→λ]", "", 0, "", "", false};
  uint32_t i0 = b.InternFrame(inner), i1 = b.InternFrame(outer), i2 = b.InternFrame(unknown),
           i3 = b.InternFrame(unicode);
  b.AddSample({i0, i1, i2}, 5, false);
  b.AddSample({i3, i2}, 2, true);
  r.profile = b.Release();
  Write(r);
  Profile p = QueryProfile("api", kT0, kT0 + kHour);
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.mode, "wall");
  EXPECT_EQ(p.period_nanos, 1000000);
  for (const ProfileSample& s : p.samples) {
    if (s.count == 5) {
      ASSERT_EQ(s.frames.size(), 3u);
      EXPECT_EQ(p.frames[s.frames[0]], inner);
      EXPECT_EQ(p.frames[s.frames[1]], outer);
      EXPECT_EQ(p.frames[s.frames[2]], unknown);
      EXPECT_FALSE(s.truncated);
    } else {
      EXPECT_EQ(s.count, 2);
      ASSERT_EQ(s.frames.size(), 2u);
      EXPECT_EQ(p.frames[s.frames[0]], unicode);
      EXPECT_TRUE(s.truncated);
    }
  }
}

TEST_P(StoreConformanceTest, MergesAcrossSummariesAndAgents) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    Write(MakeRecord("agent-a", seq, "api", {{"pid", "1"}}, kT0 + (seq - 1) * 10 * kSecond,
                     {{"main;work;hot", 2}, {"main;idle", 1}}));
    Write(MakeRecord("agent-b", seq, "api", {{"pid", "2"}}, kT0 + (seq - 1) * 10 * kSecond,
                     {{"main;work;hot", 5}, {"main;work;cold", 1}}));
  }
  // Same labels, same bucket, two agents (e.g. restarts): merged too.
  Write(MakeRecord("agent-c", 1, "api", {{"pid", "1"}}, kT0, {{"main;work;hot", 100}}));
  Profile p = QueryProfile("api", kT0, kT0 + kHour);
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{
                           {"main;work;hot", 3 * 7 + 100}, {"main;idle", 3}, {"main;work;cold", 3}}));
  // Frames are interned in the result: "main" appears once.
  int mains = 0;
  for (const Frame& f : p.frames) mains += f.function == "main";
  EXPECT_EQ(mains, 1);
}

TEST_P(StoreConformanceTest, DuplicateSequenceIsStoredOnce) {
  SummaryRecord r = MakeRecord("a1", 42, "api", {}, kT0, {{"main;hot", 9}});
  Write(r);
  Write(r, /*expect_duplicate=*/true);
  // Same sequence, different content: still a duplicate (identity is the key).
  Write(MakeRecord("a1", 42, "api", {}, kT0, {{"main;other", 1}}), true);
  // Same sequence from another instance is new.
  Write(MakeRecord("a2", 42, "api", {}, kT0, {{"main;hot", 1}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + kHour)),
            (std::map<std::string, int64_t>{{"main;hot", 10}}));
}

TEST_P(StoreConformanceTest, LabelMatchersOfAllFourKinds) {
  Write(MakeRecord("a1", 1, "api", {{"env", "prod"}, {"region", "eu"}}, kT0, {{"main;p", 1}}));
  Write(MakeRecord("a2", 1, "api", {{"env", "production"}, {"region", "us"}}, kT0,
                   {{"main;pn", 10}}));
  Write(MakeRecord("a3", 1, "api", {{"env", "staging"}}, kT0, {{"main;s", 100}}));
  Write(MakeRecord("a4", 1, "api", {}, kT0, {{"main;none", 1000}}));
  auto total = [&](std::vector<LabelMatcher> ms) {
    return QueryProfile("api", kT0, kT0 + kHour, ms).TotalCount();
  };
  using L = LabelMatcher;
  EXPECT_EQ(total({}), 1111);
  EXPECT_EQ(total({M("env", L::kEq, "prod")}), 1);
  EXPECT_EQ(total({M("env", L::kNotEq, "prod")}), 1110);
  EXPECT_EQ(total({M("env", L::kRegex, "prod")}), 1);  // full match, not substring
  EXPECT_EQ(total({M("env", L::kRegex, "prod.*")}), 11);
  EXPECT_EQ(total({M("env", L::kRegex, "prod|staging")}), 101);
  EXPECT_EQ(total({M("env", L::kNotRegex, "prod.*")}), 1100);
  EXPECT_EQ(total({M("env", L::kEq, "")}), 1000);       // absent label is ""
  EXPECT_EQ(total({M("env", L::kNotEq, "")}), 111);
  EXPECT_EQ(total({M("env", L::kRegex, ".+")}), 111);
  EXPECT_EQ(total({M("env", L::kRegex, "prod.*"), M("region", L::kNotEq, "us")}), 1);
  EXPECT_EQ(total({M("service", L::kEq, "api")}), 1111);
  EXPECT_EQ(total({M("service", L::kEq, "web")}), 0);
  // Service may come from a matcher alone.
  ProfileQuery q;
  q.matchers = {M("service", L::kRegex, "a.i"), M("region", L::kEq, "eu")};
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + kHour;
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 1);
  // A bad regex is the caller's error.
  q.matchers = {M("env", L::kRegex, "(")};
  Status s = store_->Query(q, &p);
  EXPECT_EQ(s.code(), Status::kInvalidArgument) << s.ToString();
}

TEST_P(StoreConformanceTest, SampleLabelsAreSampleDataNotSeries) {
  const SampleLabels a = {{"span_id", "a1"}, {"span_name", "A"}};
  const SampleLabels b = {{"span_id", "b1"}, {"span_name", "B"}};
  Write(MakeRecord("w1", 1, "api", {{"env", "prod"}}, kT0,
                   {{"main;work_a", 8, false, a},
                    {"main;common", 2, false, a},
                    {"main;common", 3, false, b},
                    {"main;work_b", 7, false, b},
                    {"main;common", 5}}));
  Write(MakeRecord("w1", 2, "api", {{"env", "prod"}}, kT0 + 10 * kSecond,
                   {{"main;work_a", 1, false, a}}));
  Write(MakeRecord("w1", 2, "api", {{"env", "prod"}}, kT0 + 10 * kSecond,
                   {{"main;work_a", 50, false, a}}),
        true);  // a duplicate is not counted, labels included
  using L = LabelMatcher;
  auto query = [&](std::vector<LabelMatcher> ms) { return QueryProfile("api", kT0, kT0 + kHour, ms); };
  Profile all = query({});
  EXPECT_EQ(all.TotalCount(), 26);
  EXPECT_EQ(Folded(all)["main;common"], 10);
  std::map<SampleLabels, int64_t> by_labels;
  for (const ProfileSample& s : all.samples) by_labels[s.labels] += s.count;
  EXPECT_EQ(by_labels, (std::map<SampleLabels, int64_t>{{{}, 5}, {a, 11}, {b, 10}}));
  Profile span_a = query({M("span_id", L::kEq, "a1")});
  EXPECT_EQ(Folded(span_a), (std::map<std::string, int64_t>{{"main;work_a", 9}, {"main;common", 2}}));
  for (const ProfileSample& s : span_a.samples) EXPECT_EQ(s.labels, a);
  EXPECT_EQ(query({M("span_id", L::kRegex, "a1|b1")}).TotalCount(), 21);
  EXPECT_EQ(query({M("span_id", L::kEq, "")}).TotalCount(), 5);  // unlabelled samples
  EXPECT_EQ(query({M("span_id", L::kNotEq, "a1")}).TotalCount(), 15);
  EXPECT_EQ(query({M("span_name", L::kEq, "B"), M("env", L::kEq, "prod")}).TotalCount(), 10);
  EXPECT_EQ(query({M("span_name", L::kEq, "B"), M("env", L::kEq, "dev")}).TotalCount(), 0);
  EXPECT_EQ(query({M("trace_id", L::kRegex, ".+")}).TotalCount(), 0);
  // Not series: no new label set, no label name.
  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].label_sets.size(), 1u);
  ProfileQuery q;
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + kHour;
  std::vector<std::string> names;
  ASSERT_TRUE(store_->LabelNames(q, &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"env", "service"}));
}

TEST_P(StoreConformanceTest, SeriesCountsOnlyTheSamplesLabelMatchersSelect) {
  const SampleLabels a = {{"span_name", "A"}}, b = {{"span_name", "B"}};
  Write(MakeRecord("w", 1, "api", {}, kT0,
                   {{"main;x", 3, false, a}, {"main;y", 4, false, b}, {"main;x", 5}}));
  Write(MakeRecord("w", 2, "api", {}, kT0 + 20 * kSecond, {{"main;y", 7, false, b}}));
  ProfileQuery q;
  q.service = "api";
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + kHour;
  auto totals = [&](std::vector<LabelMatcher> ms, const std::string& function = "") {
    q.matchers = std::move(ms);
    std::vector<SeriesPoint> points;
    EXPECT_TRUE(store_->Series(q, 10 * kSecond, function, &points).ok());
    std::vector<std::pair<int64_t, int64_t>> out;
    for (const SeriesPoint& p : points) out.emplace_back(p.total, p.matched);
    return out;
  };
  using L = LabelMatcher;
  using V = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(totals({}), (V{{12, 0}, {7, 0}}));
  EXPECT_EQ(totals({M("span_name", L::kEq, "A")}), (V{{3, 0}}));  // no empty step
  EXPECT_EQ(totals({M("span_name", L::kEq, "B")}, "y"), (V{{4, 4}, {7, 7}}));
  EXPECT_EQ(totals({M("span_name", L::kEq, "")}), (V{{5, 0}}));  // unlabelled samples
  EXPECT_EQ(totals({M("span_name", L::kRegex, "A|B")}, "x"), (V{{7, 3}, {7, 0}}));
}

TEST_P(StoreConformanceTest, TimeRangeIncludesFromExcludesTo) {
  Write(MakeRecord("a1", 1, "api", {}, kT0, {{"main;t0", 1}}));
  Write(MakeRecord("a1", 2, "api", {}, kT0 + 10 * kSecond, {{"main;t10", 10}}));
  Write(MakeRecord("a1", 3, "api", {}, kT0 + 20 * kSecond, {{"main;t20", 100}}));
  auto total = [&](int64_t from, int64_t to) {
    return QueryProfile("api", kT0 + from * kSecond, kT0 + to * kSecond).TotalCount();
  };
  EXPECT_EQ(total(0, 10), 1);
  EXPECT_EQ(total(10, 20), 10);
  EXPECT_EQ(total(0, 20), 11);
  EXPECT_EQ(total(0, 30), 111);
  EXPECT_EQ(total(20, 3600), 100);
  EXPECT_EQ(total(-3600, 0), 0);  // ends exactly at the first window
  EXPECT_EQ(total(30, 3600), 0);
  EXPECT_EQ(total(10, 10), 0);
  Profile p = QueryProfile("api", kT0 + 10 * kSecond, kT0 + 20 * kSecond);
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;t10", 10}}));
}

TEST_P(StoreConformanceTest, ModeFilter) {
  Write(MakeRecord("a1", 1, "api", {}, kT0, {{"main;on_cpu", 3}}, "cpu"));
  Write(MakeRecord("a2", 1, "api", {}, kT0, {{"main;blocked", 4}}, "wall"));
  Profile cpu = QueryProfile("api", kT0, kT0 + kHour, {}, "cpu");
  EXPECT_EQ(Folded(cpu), (std::map<std::string, int64_t>{{"main;on_cpu", 3}}));
  EXPECT_EQ(cpu.mode, "cpu");
  Profile wall = QueryProfile("api", kT0, kT0 + kHour, {}, "wall");
  EXPECT_EQ(Folded(wall), (std::map<std::string, int64_t>{{"main;blocked", 4}}));
  EXPECT_EQ(wall.mode, "wall");
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + kHour, {}, "").TotalCount(), 7);
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + kHour, {}, "alloc").TotalCount(), 0);
}

TEST_P(StoreConformanceTest, ListServicesWithLabelSetsAndFirstLastSeen) {
  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  EXPECT_TRUE(services.empty());
  Write(MakeRecord("a1", 1, "api", {{"env", "prod"}}, kT0, {{"main", 1}}));
  Write(MakeRecord("a1", 2, "api", {{"env", "prod"}}, kT0 + 60 * kSecond, {{"main", 1}}));
  Write(MakeRecord("a2", 1, "api", {{"env", "dev"}}, kT0 + 20 * kSecond, {{"main", 1}}));
  Write(MakeRecord("a3", 1, "web", {{"env", "prod"}}, kT0 + 30 * kSecond, {{"main", 1}}));
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 2u);
  std::map<std::string, ServiceInfo> by_name;
  for (const auto& s : services) by_name[s.service] = s;
  const ServiceInfo& api = by_name["api"];
  EXPECT_EQ(api.first_seen_unix_nanos, kT0);
  EXPECT_EQ(api.last_seen_unix_nanos, kT0 + 70 * kSecond);  // end of the last window
  ASSERT_EQ(api.label_sets.size(), 2u);
  std::set<std::string> envs;
  for (const Labels& l : api.label_sets) {
    EXPECT_EQ(l.at("service"), "api");
    envs.insert(l.at("env"));
  }
  EXPECT_EQ(envs, (std::set<std::string>{"dev", "prod"}));
  const ServiceInfo& web = by_name["web"];
  EXPECT_EQ(web.first_seen_unix_nanos, kT0 + 30 * kSecond);
  EXPECT_EQ(web.last_seen_unix_nanos, kT0 + 40 * kSecond);
  ASSERT_EQ(web.label_sets.size(), 1u);
  EXPECT_EQ(web.label_sets[0], (Labels{{"env", "prod"}, {"service", "web"}}));
}

TEST_P(StoreConformanceTest, LabelNamesAndValues) {
  Write(MakeRecord("a1", 1, "api", {{"env", "prod"}, {"host", "h1"}}, kT0, {{"main", 1}}));
  Write(MakeRecord("a2", 1, "api", {{"env", "dev"}, {"host", "h2"}}, kT0, {{"main", 1}}));
  Write(MakeRecord("a3", 1, "web", {{"env", "qa"}, {"zone", "z"}}, kT0, {{"main", 1}}));
  ProfileQuery q;
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + kHour;
  std::vector<std::string> out;
  ASSERT_TRUE(store_->LabelNames(q, &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"env", "host", "service", "zone"}));
  ASSERT_TRUE(store_->LabelValues(q, "service", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"api", "web"}));
  q.service = "api";
  ASSERT_TRUE(store_->LabelNames(q, &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"env", "host", "service"}));
  ASSERT_TRUE(store_->LabelValues(q, "env", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"dev", "prod"}));
  q.matchers = {M("host", LabelMatcher::kEq, "h2")};
  ASSERT_TRUE(store_->LabelValues(q, "env", &out).ok());
  EXPECT_EQ(out, (std::vector<std::string>{"dev"}));
  ASSERT_TRUE(store_->LabelValues(q, "nope", &out).ok());
  EXPECT_TRUE(out.empty());
  // Outside the time range: nothing.
  q.matchers.clear();
  q.from_unix_nanos = kT0 + kHour;
  q.to_unix_nanos = kT0 + 2 * kHour;
  ASSERT_TRUE(store_->LabelValues(q, "env", &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST_P(StoreConformanceTest, SeriesBucketsWithAndWithoutFunction) {
  Write(MakeRecord("a1", 1, "api", {}, kT0, {{"main;hot", 3}, {"main;cold", 1}}));
  Write(MakeRecord("a1", 2, "api", {}, kT0 + 10 * kSecond, {{"main;hot", 5}}));
  Write(MakeRecord("a1", 3, "api", {}, kT0 + 40 * kSecond, {{"main;cold", 7}}));
  Write(MakeRecord("a2", 1, "api", {}, kT0 + 40 * kSecond, {{"main;x;hot", 2}}));
  ProfileQuery q;
  q.service = "api";
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + 60 * kSecond;
  std::vector<SeriesPoint> pts;
  ASSERT_TRUE(store_->Series(q, 20 * kSecond, "", &pts).ok());
  ASSERT_EQ(pts.size(), 2u);  // [0,20) and [40,60); [20,40) is empty and omitted
  EXPECT_EQ(pts[0].unix_nanos, kT0);
  EXPECT_EQ(pts[0].total, 9);
  EXPECT_EQ(pts[1].unix_nanos, kT0 + 40 * kSecond);
  EXPECT_EQ(pts[1].total, 9);
  ASSERT_TRUE(store_->Series(q, 20 * kSecond, "hot", &pts).ok());
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[0].total, 9);
  EXPECT_EQ(pts[0].matched, 8);
  EXPECT_EQ(pts[1].total, 9);
  EXPECT_EQ(pts[1].matched, 2);
  ASSERT_TRUE(store_->Series(q, 10 * kSecond, "main", &pts).ok());
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_EQ(pts[1].unix_nanos, kT0 + 10 * kSecond);
  EXPECT_EQ(pts[1].total, 5);
  EXPECT_EQ(pts[1].matched, 5);
  ASSERT_TRUE(store_->Series(q, 10 * kSecond, "no_such_fn", &pts).ok());
  for (const auto& pt : pts) EXPECT_EQ(pt.matched, 0);
  EXPECT_EQ(store_->Series(q, 0, "", &pts).code(), Status::kInvalidArgument);
}

TEST_P(StoreConformanceTest, RetentionDeletesOldAndKeepsNew) {
  Write(MakeRecord("a1", 1, "api", {}, kT0, {{"main;old", 1}}));
  Write(MakeRecord("a2", 1, "gone", {}, kT0, {{"main;old", 1}}));
  Write(MakeRecord("a1", 2, "api", {}, kT0 + kHour, {{"main;new", 2}}));
  ASSERT_TRUE(store_->DeleteBefore(kT0 + kHour / 2).ok());
  EXPECT_EQ(Folded(QueryProfile("api", 0, kT0 + 2 * kHour)),
            (std::map<std::string, int64_t>{{"main;new", 2}}));
  EXPECT_EQ(QueryProfile("gone", 0, kT0 + 2 * kHour).TotalCount(), 0);
  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].service, "api");
  // Writing the deleted stacks again after retention works.
  Write(MakeRecord("a1", 3, "api", {}, kT0 + kHour + 10 * kSecond, {{"main;old", 4}}));
  EXPECT_EQ(Folded(QueryProfile("api", 0, kT0 + 2 * kHour)),
            (std::map<std::string, int64_t>{{"main;new", 2}, {"main;old", 4}}));
  // Retention at "now" keeps nothing older.
  ASSERT_TRUE(store_->DeleteBefore(kT0 + 2 * kHour).ok());
  EXPECT_EQ(QueryProfile("api", 0, kT0 + 2 * kHour).TotalCount(), 0);
}

TEST_P(StoreConformanceTest, ConcurrentWritersAndReaders) {
  constexpr int kWriters = 4, kPerWriter = 40, kReaders = 2;
  std::atomic<bool> done{false};
  std::atomic<int> read_errors{0}, reads{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        SummaryRecord r = MakeRecord("w" + std::to_string(w), i + 1, "api",
                                     {{"pid", std::to_string(w)}}, kT0 + i * 10 * kSecond,
                                     {{"main;work;f" + std::to_string(i % 5), 2}, {"main", 1}});
        bool dup = true;
        Status s = store_->Write(r, &dup);
        EXPECT_TRUE(s.ok()) << s.ToString();
        EXPECT_FALSE(dup);
      }
    });
  }
  for (int rd = 0; rd < kReaders; ++rd) {
    threads.emplace_back([&] {
      int64_t last = 0;
      while (!done.load()) {
        ProfileQuery q;
        q.service = "api";
        q.from_unix_nanos = kT0;
        q.to_unix_nanos = kT0 + kHour;
        Profile p;
        Status s = store_->Query(q, &p);
        if (!s.ok()) {
          ++read_errors;
          ADD_FAILURE() << s.ToString();
          continue;
        }
        int64_t t = p.TotalCount();
        if (t < last || t % 3 != 0) ++read_errors;  // snapshots only grow, whole records only
        last = t;
        ++reads;
        std::vector<ServiceInfo> services;
        if (!store_->ListServices(&services).ok()) ++read_errors;
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done = true;
  for (size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_GT(reads.load(), 0);
  Profile p = QueryProfile("api", kT0, kT0 + kHour);
  EXPECT_EQ(p.TotalCount(), kWriters * kPerWriter * 3);
  EXPECT_EQ(Folded(p)["main"], kWriters * kPerWriter);
}

TEST_P(StoreConformanceTest, ReopenKeepsDataAndIdempotency) {
  SummaryRecord r = MakeRecord("a1", 7, "api", {{"env", "prod"}}, kT0, {{"main;hot", 11}});
  Write(r);
  Reopen();
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + kHour)),
            (std::map<std::string, int64_t>{{"main;hot", 11}}));
  Write(r, /*expect_duplicate=*/true);
  Write(MakeRecord("a1", 8, "api", {{"env", "prod"}}, kT0 + 10 * kSecond, {{"main;hot", 1}}));
  Reopen();
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + kHour).TotalCount(), 12);
  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 1u);
  EXPECT_GE(store_->SizeBytes(), 0);
}

// --- Drop counters (Store::Counters): losses are data, not silence.

TEST_P(StoreConformanceTest, CountersAreSummedOverSummariesAndSeries) {
  Write(WithCounters(MakeRecord("a1", 1, "api", {{"env", "prod"}}, kT0, {{"main;hot", 5}}),
                     {{"samples_dropped_ring_full", 3}, {"unwind_failures", 1}}));
  Write(WithCounters(
      MakeRecord("a1", 2, "api", {{"env", "prod"}}, kT0 + 10 * kSecond, {{"main;hot", 5}}),
      {{"samples_dropped_ring_full", 4}, {"samples_dropped_spool_full", 100},
       {"summaries_dropped_spool_full", 2}}));
  // Same bucket as a1/1, another agent and label set.
  Write(WithCounters(MakeRecord("a2", 1, "api", {{"env", "dev"}}, kT0, {{"main;hot", 1}}),
                     {{"samples_dropped_ring_full", 10}, {"stacks_dropped_limit", 7}}));
  // Same series and bucket as a1/1 from a restarted agent: summed, not replaced.
  Write(WithCounters(MakeRecord("a3", 1, "api", {{"env", "prod"}}, kT0, {{"main;hot", 1}}),
                     {{"samples_dropped_ring_full", 1000}}));
  // Another service: never mixed in.
  Write(WithCounters(MakeRecord("w1", 1, "web", {{"env", "prod"}}, kT0, {{"main;hot", 1}}),
                     {{"samples_dropped_ring_full", 5000}}));
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour),
            (CounterMap{{"samples_dropped_ring_full", 1017},
                        {"unwind_failures", 1},
                        {"samples_dropped_spool_full", 100},
                        {"summaries_dropped_spool_full", 2},
                        {"stacks_dropped_limit", 7}}));
  EXPECT_EQ(QueryCounters("web", kT0, kT0 + kHour),
            (CounterMap{{"samples_dropped_ring_full", 5000}}));
  // The counters of what a query selects do not disturb its profile.
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + kHour).TotalCount(), 12);
}

TEST_P(StoreConformanceTest, CountersFollowSelectorTimeRangeAndMode) {
  using L = LabelMatcher;
  Write(WithCounters(MakeRecord("a1", 1, "api", {{"env", "prod"}}, kT0, {{"main", 1}}),
                     {{"samples_dropped_ring_full", 1}}));
  Write(WithCounters(
      MakeRecord("a1", 2, "api", {{"env", "prod"}}, kT0 + 10 * kSecond, {{"main", 1}}),
      {{"samples_dropped_ring_full", 10}}));
  Write(WithCounters(
      MakeRecord("a1", 3, "api", {{"env", "prod"}}, kT0 + 20 * kSecond, {{"main", 1}}),
      {{"samples_dropped_ring_full", 100}}));
  Write(WithCounters(MakeRecord("a2", 1, "api", {{"env", "dev"}}, kT0, {{"main", 1}}),
                     {{"truncated_stacks", 1000}}));
  Write(WithCounters(MakeRecord("a3", 1, "api", {{"env", "prod"}}, kT0, {{"main", 1}}, "wall"),
                     {{"samples_dropped_ring_full", 10000}}));
  auto ring = [&](int64_t from_s, int64_t to_s, std::vector<LabelMatcher> ms = {},
                  const std::string& mode = "cpu") {
    CounterMap m = QueryCounters("api", kT0 + from_s * kSecond, kT0 + to_s * kSecond, ms, mode);
    return m.count("samples_dropped_ring_full") ? m["samples_dropped_ring_full"] : 0;
  };
  // Time range: [from, to) exactly as Query.
  EXPECT_EQ(ring(0, 10), 1);
  EXPECT_EQ(ring(10, 20), 10);
  EXPECT_EQ(ring(0, 30), 111);
  EXPECT_EQ(ring(20, 3600), 100);
  EXPECT_EQ(ring(-3600, 0), 0);
  EXPECT_EQ(ring(30, 3600), 0);
  // Selector.
  EXPECT_EQ(ring(0, 3600, {M("env", L::kEq, "prod")}), 111);
  EXPECT_EQ(ring(0, 3600, {M("env", L::kEq, "dev")}), 0);
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour, {M("env", L::kRegex, "d.*")}),
            (CounterMap{{"truncated_stacks", 1000}}));
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour, {M("env", L::kEq, "qa")}), CounterMap{});
  // Service from a matcher alone.
  ProfileQuery q;
  q.matchers = {M("service", L::kEq, "api"), M("env", L::kEq, "dev")};
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + kHour;
  CounterMap out;
  ASSERT_TRUE(store_->Counters(q, &out).ok());
  EXPECT_EQ(out, (CounterMap{{"truncated_stacks", 1000}}));
  // Mode: like Query, empty means any.
  EXPECT_EQ(ring(0, 3600, {}, "wall"), 10000);
  EXPECT_EQ(ring(0, 3600, {}, ""), 10111);
  EXPECT_EQ(ring(0, 3600, {}, "alloc"), 0);
  // A bad regex is the caller's error, as in Query.
  q.matchers = {M("env", L::kRegex, "(")};
  EXPECT_EQ(store_->Counters(q, &out).code(), Status::kInvalidArgument);
}

TEST_P(StoreConformanceTest, DuplicateSummaryCountersAreNotCountedTwice) {
  SummaryRecord r = WithCounters(MakeRecord("a1", 9, "api", {}, kT0, {{"main;hot", 2}}),
                                 {{"samples_dropped_spool_full", 40},
                                  {"summaries_dropped_spool_full", 1}});
  Write(r);
  Write(r, /*expect_duplicate=*/true);
  // Same identity, other counters: still the duplicate, nothing added.
  Write(WithCounters(r, {{"samples_dropped_spool_full", 999}}), true);
  const CounterMap want = {{"samples_dropped_spool_full", 40},
                           {"summaries_dropped_spool_full", 1}};
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour), want);
  // Durable, and idempotent across a reopen too.
  Reopen();
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour), want);
  Write(r, true);
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour), want);
}

TEST_P(StoreConformanceTest, ZeroAndAbsentCountersAndSummariesWithoutSamples) {
  // No counters at all: nothing to report.
  Write(MakeRecord("a1", 1, "api", {}, kT0, {{"main;hot", 3}}));
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour), CounterMap{});
  EXPECT_EQ(QueryCounters("nosuch", kT0, kT0 + kHour), CounterMap{});
  // Zero counters add nothing and are not reported.
  Write(WithCounters(MakeRecord("a1", 2, "api", {}, kT0 + 10 * kSecond, {{"main;hot", 1}}),
                     {{"samples_dropped_ring_full", 0}, {"unwind_failures", 2}}));
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour), (CounterMap{{"unwind_failures", 2}}));
  // A summary whose every sample was lost still reports its losses.
  Write(WithCounters(MakeRecord("a1", 3, "api", {}, kT0 + 20 * kSecond, {}),
                     {{"samples_dropped_ring_full", 50}, {"timers_failed", 1}}));
  EXPECT_EQ(QueryCounters("api", kT0, kT0 + kHour),
            (CounterMap{{"samples_dropped_ring_full", 50},
                        {"timers_failed", 1},
                        {"unwind_failures", 2}}));
  EXPECT_EQ(QueryCounters("api", kT0 + 20 * kSecond, kT0 + 30 * kSecond),
            (CounterMap{{"samples_dropped_ring_full", 50}, {"timers_failed", 1}}));
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + kHour).TotalCount(), 4);
}

TEST_P(StoreConformanceTest, RetentionDeletesCounters) {
  Write(WithCounters(MakeRecord("a1", 1, "api", {}, kT0, {{"main;old", 1}}),
                     {{"samples_dropped_ring_full", 5}}));
  Write(WithCounters(MakeRecord("a2", 1, "gone", {}, kT0, {{"main;old", 1}}),
                     {{"samples_dropped_ring_full", 6}}));
  Write(WithCounters(MakeRecord("a1", 2, "api", {}, kT0 + kHour, {{"main;new", 2}}),
                     {{"samples_dropped_ring_full", 7}}));
  ASSERT_TRUE(store_->DeleteBefore(kT0 + kHour / 2).ok());
  EXPECT_EQ(QueryCounters("api", 0, kT0 + 2 * kHour),
            (CounterMap{{"samples_dropped_ring_full", 7}}));
  EXPECT_EQ(QueryCounters("gone", 0, kT0 + 2 * kHour), CounterMap{});
  // The same (series, bucket) written again after retention starts from 0.
  Write(WithCounters(MakeRecord("a3", 1, "api", {}, kT0, {{"main;old", 1}}),
                     {{"samples_dropped_ring_full", 1}}));
  EXPECT_EQ(QueryCounters("api", 0, kT0 + kHour / 2),
            (CounterMap{{"samples_dropped_ring_full", 1}}));
  ASSERT_TRUE(store_->DeleteBefore(kT0 + 2 * kHour).ok());
  EXPECT_EQ(QueryCounters("api", 0, kT0 + 2 * kHour), CounterMap{});
}

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
