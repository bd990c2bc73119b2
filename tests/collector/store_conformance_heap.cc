// Heap sample types in the Store conformance suite (store.h): alloc_* types
// are counters (summed over the range like cpu), inuse_* types are gauges:
// every summary of a process carries the full snapshot of its live sampled
// allocations (empty: nothing live), and a query returns, per series (one
// label set), the latest snapshot in the range (per step for Series), merged
// across series. Records are built the way the ingest service builds them:
// one record per heap type, instance "<agent instance>/<type>", period 1.
#include "store_conformance.h"

namespace stackstream {
namespace collector {
namespace testing {
namespace {

using Folds = std::map<std::string, int64_t>;

SummaryRecord Heap(const std::string& agent, uint64_t seq, const std::string& pid, int64_t start,
                   const std::vector<FoldedStack>& stacks,
                   const std::string& type = "inuse_space") {
  SummaryRecord r = MakeRecord(agent + "/" + type, seq, "api", {{"pid", pid}}, start, stacks, type);
  r.profile.period_nanos = 1;
  return r;
}

LabelMatcher Pid(const std::string& pid) {
  LabelMatcher m;
  m.name = "pid";
  m.value = pid;
  return m;
}

std::vector<SeriesPoint> SeriesOf(Store* store, const std::string& mode, int64_t from, int64_t to,
                                  int64_t step, const std::string& function = "") {
  ProfileQuery q;
  q.service = "api";
  q.mode = mode;
  q.from_unix_nanos = from;
  q.to_unix_nanos = to;
  std::vector<SeriesPoint> pts;
  Status s = store->Series(q, step, function, &pts);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return pts;
}

// (time offset from kT0 in seconds, total, matched) of each point.
std::vector<std::tuple<int64_t, int64_t, int64_t>> Points(const std::vector<SeriesPoint>& pts) {
  std::vector<std::tuple<int64_t, int64_t, int64_t>> out;
  for (const SeriesPoint& p : pts) {
    out.emplace_back((p.unix_nanos - kT0) / kSecond, p.total, p.matched);
  }
  return out;
}

constexpr int64_t k10s = 10 * kSecond;

}  // namespace

TEST_P(StoreConformanceTest, InUseQueryMergesEachSeriesLatestSnapshotInRange) {
  // Written out of time order: "latest" is by window, not by arrival.
  Write(Heap("p1", 2, "1", kT0 + k10s, {{"main;a", 150}, {"main;b", 20}}));
  Write(Heap("p1", 1, "1", kT0, {{"main;a", 100}}));
  Write(Heap("p1", 4, "1", kT0 + 3 * k10s, {{"main;b", 7}}));
  Write(Heap("p1", 3, "1", kT0 + 2 * k10s, {{"main;a", 40}}));
  Write(Heap("p2", 1, "2", kT0, {{"main;a", 1000}}));
  Write(Heap("p2", 2, "2", kT0 + k10s, {{"main;c", 300}}));
  Write(Heap("p1", 1, "1", kT0, {{"main;a", 2}}, "inuse_objects"));
  Write(Heap("p1", 2, "1", kT0 + k10s, {{"main;a", 3}}, "inuse_objects"));

  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + k10s, {}, "inuse_space")),
            (Folds{{"main;a", 1100}}));
  Profile p = QueryProfile("api", kT0, kT0 + 2 * k10s, {}, "inuse_space");
  EXPECT_EQ(Folded(p), (Folds{{"main;a", 150}, {"main;b", 20}, {"main;c", 300}}));
  EXPECT_EQ(p.mode, "inuse_space");
  EXPECT_EQ(p.period_nanos, 1);
  EXPECT_EQ(p.start_unix_nanos, kT0 + k10s);  // the window of the snapshots returned
  EXPECT_EQ(p.end_unix_nanos, kT0 + 2 * k10s);
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 4 * k10s, {}, "inuse_space")),
            (Folds{{"main;b", 7}, {"main;c", 300}}));
  EXPECT_EQ(Folded(QueryProfile("api", 0, 0, {}, "inuse_space")),  // unbounded
            (Folds{{"main;b", 7}, {"main;c", 300}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0 + 2 * k10s, kT0 + 4 * k10s, {}, "inuse_space")),
            (Folds{{"main;b", 7}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 4 * k10s, {Pid("2")}, "inuse_space")),
            (Folds{{"main;c", 300}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 4 * k10s, {}, "inuse_objects")),
            (Folds{{"main;a", 3}}));
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + 4 * k10s, {}, "inuse_space").TotalCount(), 307);

  // An agent restart: a new agent instance (on another shard of a two-shard
  // store) keeps writing the same series (same labels): its snapshot is the
  // series' latest, not added to the old instance's.
  Write(Heap("p1-restarted", 1, "1", kT0 + 4 * k10s, {{"main;d", 11}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 5 * k10s, {}, "inuse_space")),
            (Folds{{"main;c", 300}, {"main;d", 11}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 4 * k10s, {}, "inuse_space")),
            (Folds{{"main;b", 7}, {"main;c", 300}}));
}

TEST_P(StoreConformanceTest, EmptyInUseSnapshotMeansNothingLive) {
  Write(Heap("p1", 1, "1", kT0, {{"main;leak", 500}}));
  Write(Heap("p1", 2, "1", kT0 + k10s, {}));  // everything freed
  Write(Heap("p2", 1, "2", kT0, {{"main;a", 3}}));
  Write(Heap("p2", 2, "2", kT0 + k10s, {{"main;a", 4}}));

  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + k10s, {}, "inuse_space")),
            (Folds{{"main;leak", 500}, {"main;a", 3}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 2 * k10s, {}, "inuse_space")),
            (Folds{{"main;a", 4}}));
  EXPECT_EQ(QueryProfile("api", kT0, kT0 + 2 * k10s, {Pid("1")}, "inuse_space").TotalCount(), 0);
  // Re-sending the empty snapshot's summary with other content changes nothing.
  Write(Heap("p1", 2, "1", kT0 + k10s, {{"main;leak", 500}}), /*expect_duplicate=*/true);
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 2 * k10s, {}, "inuse_space")),
            (Folds{{"main;a", 4}}));
  // Live again later.
  Write(Heap("p1", 3, "1", kT0 + 2 * k10s, {{"main;leak", 9}}));
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 3 * k10s, {}, "inuse_space")),
            (Folds{{"main;leak", 9}, {"main;a", 4}}));
  // The empty snapshot survives a reopen (it is stored, not implied).
  Reopen();
  EXPECT_EQ(Folded(QueryProfile("api", kT0, kT0 + 2 * k10s, {}, "inuse_space")),
            (Folds{{"main;a", 4}}));
}

TEST_P(StoreConformanceTest, InUseSeriesTakesEachSeriesLatestSnapshotPerStep) {
  Write(Heap("p1", 1, "1", kT0, {{"main;a", 100}}));
  Write(Heap("p1", 2, "1", kT0 + k10s, {{"main;a", 150}, {"main;b", 20}}));
  Write(Heap("p1", 3, "1", kT0 + 2 * k10s, {{"main;a", 40}}));
  Write(Heap("p1", 4, "1", kT0 + 3 * k10s, {}));
  Write(Heap("p1", 5, "1", kT0 + 4 * k10s, {{"main;b", 9}}));
  Write(Heap("p2", 1, "2", kT0 + k10s, {{"main;a", 1000}}));
  Write(Heap("p2", 2, "2", kT0 + 4 * k10s, {{"main;c", 5}}));
  Write(Heap("p1", 1, "1", kT0, {{"main;a", 100}}, "alloc_space"));
  Write(Heap("p1", 2, "1", kT0 + k10s, {{"main;a", 50}, {"main;b", 1}}, "alloc_space"));

  using P = std::tuple<int64_t, int64_t, int64_t>;
  // 20 s steps: [0,20) p1@10 + p2@10; [20,40) p1@30 is empty (a point of 0:
  // nothing live is a value); [40,60) p1@40 + p2@40.
  EXPECT_EQ(Points(SeriesOf(store_.get(), "inuse_space", kT0, kT0 + 6 * k10s, 2 * k10s, "b")),
            (std::vector<P>{P{0, 1170, 20}, P{20, 0, 0}, P{40, 14, 9}}));
  EXPECT_EQ(Points(SeriesOf(store_.get(), "inuse_space", kT0, kT0 + 6 * k10s, k10s)),
            (std::vector<P>{P{0, 100, 0}, P{10, 1170, 0}, P{20, 40, 0}, P{30, 0, 0},
                            P{40, 14, 0}}));
  // One step over everything: the latest snapshot of each series.
  EXPECT_EQ(Points(SeriesOf(store_.get(), "inuse_space", kT0, kT0 + 6 * k10s, 6 * k10s, "a")),
            (std::vector<P>{P{0, 14, 0}}));
  // Counters still sum.
  EXPECT_EQ(Points(SeriesOf(store_.get(), "alloc_space", kT0, kT0 + 6 * k10s, 2 * k10s, "b")),
            (std::vector<P>{P{0, 151, 1}}));
}

TEST_P(StoreConformanceTest, HeapTypesStayApartFromCpu) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    const int64_t t = kT0 + static_cast<int64_t>(seq - 1) * k10s;
    SummaryRecord cpu = MakeRecord("a1", seq, "api", {{"pid", "1"}}, t,
                                   {{"main;work", 10 * static_cast<int64_t>(seq)}});
    cpu.counters = {{"samples_dropped_ring_full", 1}};
    Write(cpu);
    Write(Heap("a1", seq, "1", t, {{"main;alloc", 1000}}, "alloc_space"));
    Write(Heap("a1", seq, "1", t, {{"main;alloc", 500 * static_cast<int64_t>(seq)}}));
  }
  const int64_t to = kT0 + 3 * k10s;
  for (const std::string mode : {"", "cpu"}) {
    Profile p = QueryProfile("api", kT0, to, {}, mode);
    EXPECT_EQ(Folded(p), (Folds{{"main;work", 60}})) << "mode \"" << mode << "\"";
    EXPECT_EQ(p.mode, "cpu");
    EXPECT_EQ(p.period_nanos, 10000000);  // the cpu records' period, not the heap records'
    EXPECT_EQ(Points(SeriesOf(store_.get(), mode, kT0, to, 3 * k10s)),
              (std::vector<std::tuple<int64_t, int64_t, int64_t>>{{0, 60, 0}}));
    EXPECT_EQ(QueryCounters("api", kT0, to, {}, mode),
              (std::map<std::string, int64_t>{{"samples_dropped_ring_full", 3}}));
  }
  Profile alloc = QueryProfile("api", kT0, to, {}, "alloc_space");
  EXPECT_EQ(Folded(alloc), (Folds{{"main;alloc", 3000}}));
  EXPECT_EQ(alloc.period_nanos, 1);
  EXPECT_EQ(alloc.start_unix_nanos, kT0);
  EXPECT_EQ(alloc.end_unix_nanos, to);
  EXPECT_EQ(Folded(QueryProfile("api", kT0, to, {}, "inuse_space")),
            (Folds{{"main;alloc", 1500}}));
  EXPECT_EQ(QueryProfile("api", kT0, to, {}, "alloc_objects").TotalCount(), 0);

  // One process, one label set, whatever types it sends.
  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].service, "api");
  EXPECT_EQ(services[0].label_sets, (std::vector<Labels>{{{"service", "api"}}}));
  EXPECT_EQ(services[0].first_seen_unix_nanos, kT0);
  EXPECT_EQ(services[0].last_seen_unix_nanos, to);
  ProfileQuery q;
  q.service = "api";
  std::vector<std::string> values;
  ASSERT_TRUE(store_->LabelValues(q, "pid", &values).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"1"}));
}

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
