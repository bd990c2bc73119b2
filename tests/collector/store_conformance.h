// StoreConformanceTest: the behaviour every Store engine must have. An engine
// joins by instantiating the suite with a StoreEngine:
//
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
//                            ::testing::Values(SqliteEngine()), EngineName);
//
// Time semantics the suite relies on: a summary's samples are timestamped by
// its window start, possibly rounded down to a bucket of at most 10 s aligned
// to the unix epoch; a query [from, to) includes from and excludes to. The
// suite only uses 10 s-aligned windows, so exact and bucketed engines agree.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace testing {

struct StoreEngine {
  std::string name;
  // Opens the database named "key". Opening a key again after the previous
  // Store was destroyed must see everything written before.
  std::function<Status(const std::string& key, std::unique_ptr<Store>* out)> open;
  // Removes what "key" left behind (may be empty).
  std::function<void(const std::string& key)> destroy;
};

std::string EngineName(const ::testing::TestParamInfo<StoreEngine>& info);

// One stack in folded form, ROOT FIRST: "main;work;hot".
struct FoldedStack {
  std::string stack;
  int64_t count;
  bool truncated = false;
  SampleLabels labels = {};  // per-sample labels (span_id, ...)
};

constexpr int64_t kSecond = 1000LL * 1000 * 1000;
// A 10 s-aligned instant (2023-11-14T22:13:20Z).
constexpr int64_t kT0 = 1700000000LL * kSecond;

// Builds a record: frames get file "<fn>.cc", line = 10 * (1 + depth from
// the root), module "/usr/bin/<service>", build_id "b1d0".
SummaryRecord MakeRecord(const std::string& instance, uint64_t sequence,
                         const std::string& service, const Labels& labels, int64_t start,
                         const std::vector<FoldedStack>& stacks, const std::string& mode = "cpu");

// "root;...;leaf" -> count, from a Profile.
std::map<std::string, int64_t> Folded(const Profile& profile);

class StoreConformanceTest : public ::testing::TestWithParam<StoreEngine> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Destroys and reopens the store on the same key.
  void Reopen();
  void Write(const SummaryRecord& record, bool expect_duplicate = false);
  // Query helper: service + range + matchers.
  Profile QueryProfile(const std::string& service, int64_t from, int64_t to,
                       const std::vector<LabelMatcher>& matchers = {},
                       const std::string& mode = "");
  // Store::Counters helper, same arguments as QueryProfile.
  std::map<std::string, int64_t> QueryCounters(const std::string& service, int64_t from,
                                               int64_t to,
                                               const std::vector<LabelMatcher>& matchers = {},
                                               const std::string& mode = "");

  std::string key_;
  std::unique_ptr<Store> store_;
};

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
