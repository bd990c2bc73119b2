// Process labels in the Store conformance suite (process_labels.h): the pid
// is kept per write, not per series, so a fork-per-connection server's
// thousands of processes stay one label set, while pid stays queryable
// (selectors, LabelNames/LabelValues, Series, Counters).
#include <atomic>
#include <thread>

#include "store_conformance.h"

namespace stackstream {
namespace collector {
namespace testing {

// The case: 5,000 processes of one service on one host.
TEST_P(StoreConformanceTest, ManyProcessesOfOneServiceStayOneLabelSet) {
  constexpr int kProcesses = 5000;
  constexpr int kThreads = 128;  // concurrent writers, as many agent streams would be
  auto count_of = [](int pid) { return static_cast<int64_t>(pid % 7 + 1); };
  std::atomic<int> next{1}, failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      for (int pid; (pid = next.fetch_add(1)) <= kProcesses;) {
        SummaryRecord r = MakeRecord("backend-" + std::to_string(pid), 1, "pg",
                                     {{"host", "db1"}, {"pid", std::to_string(pid)}},
                                     kT0 + (pid % 6) * 10 * kSecond,
                                     {{"main;PostgresMain;exec_simple_query", count_of(pid)}});
        r.counters = {{"samples_dropped_ring_full", 1}};
        bool duplicate = false;
        if (!store_->Write(r, &duplicate).ok() || duplicate) failures.fetch_add(1);
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failures.load(), 0);

  std::vector<ServiceInfo> services;
  ASSERT_TRUE(store_->ListServices(&services).ok());
  ASSERT_EQ(services.size(), 1u);
  EXPECT_LE(services[0].label_sets.size(), 10u);
  EXPECT_EQ(services[0].label_sets, (std::vector<Labels>{{{"host", "db1"}, {"service", "pg"}}}));

  ProfileQuery q;
  q.service = "pg";
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + 3600 * kSecond;
  std::vector<std::string> names, values;
  ASSERT_TRUE(store_->LabelNames(q, &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{"host", "pid", "service"}));
  ASSERT_TRUE(store_->LabelValues(q, "pid", &values).ok());
  EXPECT_EQ(values.size(), static_cast<size_t>(kProcesses));

  int64_t all = 0, forties = 0;
  for (int pid = 1; pid <= kProcesses; ++pid) {
    all += count_of(pid);
    if (pid >= 4200 && pid <= 4299) forties += count_of(pid);
  }
  Profile p = QueryProfile("pg", q.from_unix_nanos, q.to_unix_nanos);
  EXPECT_EQ(p.TotalCount(), all);
  p = QueryProfile("pg", q.from_unix_nanos, q.to_unix_nanos, {{"pid", LabelMatcher::kEq, "4242"}});
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{
                           {"main;PostgresMain;exec_simple_query", count_of(4242)}}));
  p = QueryProfile("pg", q.from_unix_nanos, q.to_unix_nanos, {{"pid", LabelMatcher::kRegex, "42.."}});
  EXPECT_EQ(p.TotalCount(), forties);
  p = QueryProfile("pg", q.from_unix_nanos, q.to_unix_nanos,
                   {{"pid", LabelMatcher::kNotEq, "4242"}, {"host", LabelMatcher::kEq, "db1"}});
  EXPECT_EQ(p.TotalCount(), all - count_of(4242));
  // No such process: nothing, and no series of it either.
  p = QueryProfile("pg", q.from_unix_nanos, q.to_unix_nanos, {{"pid", LabelMatcher::kEq, "99999"}});
  EXPECT_EQ(p.TotalCount(), 0);

  // Counters and time series select by pid too.
  EXPECT_EQ(QueryCounters("pg", q.from_unix_nanos, q.to_unix_nanos,
                          {{"pid", LabelMatcher::kRegex, "42.."}}),
            (std::map<std::string, int64_t>{{"samples_dropped_ring_full", 100}}));
  ProfileQuery one = q;
  one.matchers = {{"pid", LabelMatcher::kEq, "4242"}};
  std::vector<SeriesPoint> points;
  ASSERT_TRUE(store_->Series(one, 60 * kSecond, "", &points).ok());
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].total, count_of(4242));
  values.clear();
  ASSERT_TRUE(store_->LabelValues(one, "pid", &values).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"4242"}));
  // A bad regex on pid is an error, as on any label.
  Profile bad;
  one.matchers = {{"pid", LabelMatcher::kRegex, "(("}};
  EXPECT_EQ(store_->Query(one, &bad).code(), Status::kInvalidArgument);
}

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
