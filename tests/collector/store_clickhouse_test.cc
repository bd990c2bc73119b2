// ClickHouseStore: the conformance suite against real clickhouse-server
// processes (one node, and two shards behind Distributed tables), plus what
// is specific to the engine: URI handling, exactly-once across two stores
// (two collectors) racing on one summary, whole-partition retention, errors
// while the server is away.
//
// Run through tests/collector/clickhouse_servers.py, which starts the servers
// and passes STACKSTREAM_CLICKHOUSE_URI / STACKSTREAM_CLICKHOUSE_SHARDED_URI
// ("{db}" stands for the database name).
#include <stdlib.h>

#include <thread>

#include "store_conformance.h"
#include "storage/clickhouse_client.h"
#include "storage/clickhouse_store.h"

namespace stackstream {
namespace collector {
namespace testing {
namespace {

std::string UriTemplate(const char* var) {
  const char* v = getenv(var);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << var << " is not set: run through tests/collector/clickhouse_servers.py";
    return "clickhouse://127.0.0.1:1/{db}";
  }
  return v;
}

std::string UriFor(const char* var, const std::string& db) {
  std::string t = UriTemplate(var);
  size_t pos = t.find("{db}");
  return t.substr(0, pos) + db + t.substr(pos + 4);
}

std::string DbOf(const std::string& key) { return "t_" + key.substr(key.find('.') + 1); }

// Endpoints (host:port) named in a URI template.
std::vector<ClickHouseEndpoint> Endpoints(const char* var) {
  std::string t = UriTemplate(var);
  std::string hosts = t.substr(strlen("clickhouse://"));
  hosts = hosts.substr(0, hosts.find('/'));
  std::vector<ClickHouseEndpoint> out;
  size_t pos = 0;
  while (true) {
    size_t comma = hosts.find(',', pos);
    std::string hp = hosts.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    ClickHouseEndpoint ep;
    ep.host = hp.substr(0, hp.rfind(':'));
    ep.port = std::stoi(hp.substr(hp.rfind(':') + 1));
    ep.database = "default";
    out.push_back(ep);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

void DropDatabase(const char* var, const std::string& db) {
  for (const ClickHouseEndpoint& ep : Endpoints(var)) {
    ClickHouseClient c(ep);
    Status s = c.Execute("DROP DATABASE IF EXISTS " + db, false);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
}

StoreEngine Engine(const std::string& name, const char* var) {
  StoreEngine e;
  e.name = name;
  e.open = [var](const std::string& key, std::unique_ptr<Store>* out) {
    return OpenStore(UriFor(var, DbOf(key)), out);
  };
  e.destroy = [var](const std::string& key) { DropDatabase(var, DbOf(key)); };
  return e;
}

INSTANTIATE_TEST_SUITE_P(ClickHouse, StoreConformanceTest,
                         ::testing::Values(Engine("OneNode", "STACKSTREAM_CLICKHOUSE_URI"),
                                           Engine("TwoShards",
                                                  "STACKSTREAM_CLICKHOUSE_SHARDED_URI")),
                         EngineName);

class ClickHouseStoreTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    db_ = std::string("u_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : db_) {
      if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    DropDatabase(GetParam(), db_);
  }
  void TearDown() override { DropDatabase(GetParam(), db_); }
  std::unique_ptr<Store> OpenOne() {
    std::unique_ptr<Store> s;
    Status st = OpenStore(UriFor(GetParam(), db_), &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }
  int64_t Count(const std::string& table) {
    int64_t total = 0;
    for (ClickHouseEndpoint ep : Endpoints(GetParam())) {
      ep.database = db_;
      ClickHouseClient c(ep);
      std::string rows;
      const bool sharded = Endpoints(GetParam()).size() > 1;
      Status s = c.Select("SELECT count() FROM " + table + (sharded ? "_local" : ""), &rows);
      EXPECT_TRUE(s.ok()) << s.ToString();
      RowBinaryReader r(rows);
      uint64_t n = 0;
      r.UInt64(&n);
      total += static_cast<int64_t>(n);
    }
    return total;
  }
  std::string db_;
};

INSTANTIATE_TEST_SUITE_P(Layouts, ClickHouseStoreTest,
                         ::testing::Values("STACKSTREAM_CLICKHOUSE_URI",
                                           "STACKSTREAM_CLICKHOUSE_SHARDED_URI"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.index == 0 ? "OneNode" : "TwoShards");
                         });

const int64_t kHour = 3600 * kSecond;

int64_t Total(Store* store, const std::string& service) {
  ProfileQuery q;
  q.service = service;
  Profile p;
  Status s = store->Query(q, &p);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return p.TotalCount();
}

// Two collectors on one database: each answers for what the other stored.
TEST_P(ClickHouseStoreTest, TwoStoresShareOneDatabase) {
  auto a = OpenOne(), b = OpenOne();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Write(MakeRecord("x", 1, "api", {}, kT0, {{"main;a", 3}}), nullptr).ok());
  ASSERT_TRUE(b->Write(MakeRecord("y", 1, "api", {}, kT0, {{"main;b", 4}}), nullptr).ok());
  for (Store* s : {a.get(), b.get()}) {
    ProfileQuery q;
    q.service = "api";
    Profile p;
    ASSERT_TRUE(s->Query(q, &p).ok());
    EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;a", 3}, {"main;b", 4}}));
  }
  // A re-send to the other collector is a duplicate there.
  bool dup = false;
  ASSERT_TRUE(b->Write(MakeRecord("x", 1, "api", {}, kT0, {{"main;a", 3}}), &dup).ok());
  EXPECT_TRUE(dup);
  EXPECT_EQ(Total(a.get(), "api"), 7);
}

// Two collectors write the same summary at the same moment: both commit
// (neither saw the other's mark), every read still counts it once, and so do
// its drop counters.
TEST_P(ClickHouseStoreTest, RacingWritesOfOneSummaryCountOnce) {
  auto a = OpenOne(), b = OpenOne();
  ASSERT_TRUE(a && b);
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    SummaryRecord r = MakeRecord("agent", seq, "api", {{"pid", "1"}}, kT0 + seq * 10 * kSecond,
                                 {{"main;hot", 5}, {"main;cold", 1}});
    r.counters = {{"samples_dropped_ring_full", 2}};
    // The process's in-use snapshot of the same summary (a gauge), raced too.
    SummaryRecord h = MakeRecord("agent/inuse_space", seq, "api", {{"pid", "1"}},
                                 kT0 + seq * 10 * kSecond,
                                 {{"main;live", 100 * static_cast<int64_t>(seq)}}, "inuse_space");
    Status sa, sb, ha, hb;
    std::thread ta([&] { sa = a->Write(r, nullptr); ha = a->Write(h, nullptr); });
    std::thread tb([&] { sb = b->Write(r, nullptr); hb = b->Write(h, nullptr); });
    ta.join();
    tb.join();
    ASSERT_TRUE(sa.ok()) << sa.ToString();
    ASSERT_TRUE(sb.ok()) << sb.ToString();
    ASSERT_TRUE(ha.ok()) << ha.ToString();
    ASSERT_TRUE(hb.ok()) << hb.ToString();
  }
  EXPECT_GE(Count("summaries"), 40);  // 40..80 commit marks
  for (Store* s : {a.get(), b.get()}) {
    EXPECT_EQ(Total(s, "api"), 20 * 6);
    ProfileQuery q;
    q.service = "api";
    q.from_unix_nanos = kT0;
    q.to_unix_nanos = kT0 + kHour;
    std::map<std::string, int64_t> counters;
    ASSERT_TRUE(s->Counters(q, &counters).ok());
    EXPECT_EQ(counters["samples_dropped_ring_full"], 40);
    std::vector<SeriesPoint> pts;
    ASSERT_TRUE(s->Series(q, kHour, "hot", &pts).ok());
    ASSERT_EQ(pts.size(), 1u);
    EXPECT_EQ(pts[0].total, 120);
    EXPECT_EQ(pts[0].matched, 100);
    // In use: the latest snapshot, once; per 10 s step, each snapshot once.
    q.mode = "inuse_space";
    Profile p;
    ASSERT_TRUE(s->Query(q, &p).ok());
    EXPECT_EQ(p.TotalCount(), 2000);
    ASSERT_TRUE(s->Series(q, 10 * kSecond, "live", &pts).ok());
    ASSERT_EQ(pts.size(), 20u);
    for (size_t i = 0; i < pts.size(); ++i) {
      EXPECT_EQ(pts[i].total, 100 * static_cast<int64_t>(i + 1));
      EXPECT_EQ(pts[i].matched, pts[i].total);
    }
  }
}

// Rows of a write whose commit mark never arrived (the collector died, or
// ClickHouse failed mid-way) are never counted.
TEST_P(ClickHouseStoreTest, UncommittedSamplesAreInvisible) {
  auto s = OpenOne();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main;x", 2}}), nullptr).ok());
  const bool sharded = Endpoints(GetParam()).size() > 1;
  for (ClickHouseEndpoint ep : Endpoints(GetParam())) {
    ep.database = db_;
    ClickHouseClient c(ep);
    // Samples of a write of sequence 2 that never committed (no summaries
    // row), and of a second write of sequence 1 (another write_id, no mark).
    ASSERT_TRUE(c.Execute(std::string("INSERT INTO ") + (sharded ? "samples_local" : "samples") +
                          " SELECT bucket, service, series, mode, agent_instance_id, 2, write_id + 7, "
                          "stack, 1000 FROM " + (sharded ? "samples_local" : "samples") +
                          " UNION ALL SELECT bucket, service, series, mode, agent_instance_id, 1, "
                          "write_id + 1, stack, 1000 FROM " +
                          (sharded ? "samples_local" : "samples"))
                    .ok());
  }
  EXPECT_EQ(Total(s.get(), "api"), 2);
}

// Tables made before summaries had a pid column (process_labels.h) get it
// when a collector opens the database; their rows read as pid "" (unknown).
TEST_P(ClickHouseStoreTest, SummariesWithoutPidColumnGetIt) {
  auto s = OpenOne();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Write(MakeRecord("old", 1, "api", {}, kT0, {{"main;old", 3}}), nullptr).ok());
  s.reset();
  const bool sharded = Endpoints(GetParam()).size() > 1;
  for (ClickHouseEndpoint ep : Endpoints(GetParam())) {
    ep.database = db_;
    ClickHouseClient c(ep);
    ASSERT_TRUE(c.Execute(std::string("ALTER TABLE ") + (sharded ? "summaries_local" : "summaries") +
                          " DROP COLUMN pid")
                    .ok());
    if (sharded) ASSERT_TRUE(c.Execute("ALTER TABLE summaries DROP COLUMN pid").ok());
  }
  s = OpenOne();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Write(MakeRecord("new", 1, "api", {{"pid", "9"}}, kT0, {{"main;new", 4}}), nullptr)
                  .ok());
  ProfileQuery q;
  q.service = "api";
  Profile p;
  ASSERT_TRUE(s->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 7);
  q.matchers = {{"pid", LabelMatcher::kEq, "9"}};
  ASSERT_TRUE(s->Query(q, &p).ok());
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;new", 4}}));
  q.matchers = {{"pid", LabelMatcher::kEq, ""}};
  ASSERT_TRUE(s->Query(q, &p).ok());
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;old", 3}}));
  std::vector<std::string> values;
  q.matchers.clear();
  ASSERT_TRUE(s->LabelValues(q, "pid", &values).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"9"}));
}

// Retention drops whole hour partitions and trims the one the cutoff is in.
TEST_P(ClickHouseStoreTest, RetentionDropsWholePartitions) {
  auto s = OpenOne();
  ASSERT_TRUE(s);
  const int64_t h0 = (kT0 / kHour) * kHour;  // start of kT0's hour
  uint64_t seq = 0;
  for (int hour = 0; hour < 4; ++hour) {
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(s->Write(MakeRecord("a", ++seq, "api", {}, h0 + hour * kHour + i * 600 * kSecond,
                                      {{"main", 1}}),
                           nullptr)
                      .ok());
    }
  }
  ASSERT_EQ(Count("samples"), 12);
  // Cutoff at the start of hour 2: hours 0 and 1 are dropped as partitions.
  ASSERT_TRUE(s->DeleteBefore(h0 + 2 * kHour).ok());
  EXPECT_EQ(Count("samples"), 6);
  EXPECT_EQ(Count("summaries"), 6);
  EXPECT_EQ(Total(s.get(), "api"), 6);
  // Cutoff inside hour 2, after its second window: trimmed exactly.
  ASSERT_TRUE(s->DeleteBefore(h0 + 2 * kHour + 600 * kSecond + 10 * kSecond).ok());
  EXPECT_EQ(Total(s.get(), "api"), 4);
  EXPECT_EQ(Count("samples"), 4);
}

// Server unreachable: Open and every call fail with Unavailable, nothing hangs.
TEST(ClickHouseStoreErrors, UnreachableServerIsUnavailable) {
  std::unique_ptr<Store> s;
  Status st = OpenStore("clickhouse://127.0.0.1:1/db", &s);
  EXPECT_EQ(st.code(), Status::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("127.0.0.1:1"), std::string::npos) << st.ToString();
}

TEST(ClickHouseStoreErrors, BadUris) {
  std::unique_ptr<Store> s;
  for (const char* uri : {"clickhouse://", "clickhouse://127.0.0.1:8123", "clickhouse://h:x/db",
                          "clickhouse://127.0.0.1:8123/bad-db", "clickhouse://a:1,b:2/db",
                          "clickhouse://a:1/db?nope=1"}) {
    Status st = OpenStore(uri, &s);
    EXPECT_EQ(st.code(), Status::kInvalidArgument) << uri << ": " << st.ToString();
  }
}

}  // namespace
}  // namespace testing
}  // namespace collector
}  // namespace stackstream
