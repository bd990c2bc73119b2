// SqliteStore: the conformance suite plus what is specific to the SQLite
// engine (URI handling, bucketing, on-disk layout, durability settings).
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>

#include "store_conformance.h"
#include "storage/sqlite_schema.h"
#include "storage/sqlite_store.h"

namespace stackstream {
namespace collector {
namespace testing {
namespace {

namespace fs = std::filesystem;

const std::string& TempRoot() {
  static const std::string root = [] {
    char tmpl[] = "/tmp/stackstream-store-test-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    return std::string(dir ? dir : "/tmp");
  }();
  return root;
}

// Removes the temporary root when the test program ends.
class TempRootCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    if (TempRoot() != "/tmp") fs::remove_all(TempRoot(), ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempRootCleanup);

StoreEngine SqliteEngine() {
  StoreEngine e;
  e.name = "Sqlite";
  e.open = [](const std::string& key, std::unique_ptr<Store>* out) {
    // The directory does not exist yet: OpenStore creates it.
    return OpenStore("sqlite:" + TempRoot() + "/" + key + "/data/profiles.db", out);
  };
  e.destroy = [](const std::string& key) {
    std::error_code ec;
    fs::remove_all(TempRoot() + "/" + key, ec);
  };
  return e;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest, ::testing::Values(SqliteEngine()),
                         EngineName);

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempRoot() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    path_ = dir_ + "/profiles.db";
    Status s = OpenStore("sqlite:" + path_, &store_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  int64_t Count(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    int64_t n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }
  std::string Text(const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
        out += reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
        out += "\n";
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  std::string dir_, path_;
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, RejectsUnknownScheme) {
  std::unique_ptr<Store> s;
  Status st = OpenStore("postgres://x", &s);
  EXPECT_EQ(st.code(), Status::kInvalidArgument);
  EXPECT_NE(st.message().find("sqlite:PATH"), std::string::npos) << st.message();
  EXPECT_EQ(OpenStore("sqlite:", &s).code(), Status::kInvalidArgument);
}

TEST_F(SqliteStoreTest, UnopenablePathIsAnError) {
  std::unique_ptr<Store> s;
  // A regular file where a directory should be.
  std::string file = dir_ + "/not-a-dir";
  { FILE* f = fopen(file.c_str(), "w"); ASSERT_NE(f, nullptr); fclose(f); }
  Status st = OpenStore("sqlite:" + file + "/profiles.db", &s);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not-a-dir"), std::string::npos) << st.ToString();
}

TEST_F(SqliteStoreTest, UsesWalWithFullSync) {
  bool dup;
  ASSERT_TRUE(store_->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main", 1}}), &dup).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
  EXPECT_TRUE(fs::exists(path_ + "-wal"));
  EXPECT_GT(store_->SizeBytes(), 4096);
}

TEST_F(SqliteStoreTest, StringsFramesAndStacksStoredOnce) {
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    bool dup;
    ASSERT_TRUE(store_->Write(MakeRecord("a", seq, "api", {{"pid", std::to_string(seq % 2)}},
                                         kT0 + seq * 10 * kSecond,
                                         {{"main;work;hot", 3}, {"main;work;cold", 1}}),
                              &dup)
                    .ok());
  }
  EXPECT_EQ(Count("SELECT count(*) FROM frames"), 4);  // main, work, hot, cold
  EXPECT_EQ(Count("SELECT count(*) FROM stacks"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM strings WHERE value = 'main'"), 1);
  // Two processes of one label set: one series, the pid kept per row.
  EXPECT_EQ(Count("SELECT count(*) FROM series"), 1);
  EXPECT_EQ(Count("SELECT count(DISTINCT pid) FROM samples"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM samples"), 20);  // one row per summary
  EXPECT_EQ(Count("SELECT count(*) FROM ingested"), 20);
}

TEST_F(SqliteStoreTest, SummariesInOneBucketAllCount) {
  bool dup;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(store_->Write(MakeRecord("a", seq, "api", {}, kT0 + seq * kSecond, {{"main", 2}}),
                              &dup)
                    .ok());
  }
  EXPECT_EQ(Count("SELECT count(DISTINCT bucket_start) FROM samples"), 1);
  ProfileQuery q;
  q.service = "api";
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 10);
}

TEST_F(SqliteStoreTest, RangeQueryReadsOnlyItsSeriesAndBuckets) {
  std::string plan = Text(
      "EXPLAIN QUERY PLAN SELECT mode_id, bucket_start, stack_counts FROM samples WHERE "
      "series_id = 1 AND bucket_start >= 0 AND bucket_start < 100 AND (0 = 0 OR mode_id = 0)");
  EXPECT_NE(plan.find("USING INDEX samples_by_series_time (series_id=? AND bucket_start>? AND "
                      "bucket_start<?)"),
            std::string::npos)
      << plan;
}

TEST_F(SqliteStoreTest, PartialBucketOverlapIsIncluded) {
  bool dup;
  // Window starts at kT0 + 3 s: stored in bucket [kT0, kT0 + 10 s).
  ASSERT_TRUE(
      store_->Write(MakeRecord("a", 1, "api", {}, kT0 + 3 * kSecond, {{"main", 5}}), &dup).ok());
  ProfileQuery q;
  q.service = "api";
  q.from_unix_nanos = kT0 + 7 * kSecond;
  q.to_unix_nanos = kT0 + 8 * kSecond;
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 5);
  q.from_unix_nanos = kT0 + 10 * kSecond;
  q.to_unix_nanos = kT0 + 20 * kSecond;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 0);
  // Retention: a bucket survives until it ends at or before the cutoff.
  ASSERT_TRUE(store_->DeleteBefore(kT0 + 9 * kSecond).ok());
  q.from_unix_nanos = 0;
  q.to_unix_nanos = 0;  // unbounded
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 5);
  ASSERT_TRUE(store_->DeleteBefore(kT0 + 10 * kSecond).ok());
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(p.TotalCount(), 0);
}

TEST_F(SqliteStoreTest, FailedRecordLeavesNothingAndDoesNotBlockItsSequence) {
  SummaryRecord bad = MakeRecord("a", 1, "api", {}, kT0, {{"main", 1}});
  bad.profile.samples[0].frames.push_back(999);  // dangling frame index
  bool dup = true;
  EXPECT_FALSE(store_->Write(bad, &dup).ok());
  EXPECT_FALSE(dup);
  EXPECT_EQ(Count("SELECT count(*) FROM ingested"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM samples"), 0);
  ASSERT_TRUE(store_->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main", 1}}), &dup).ok());
  EXPECT_FALSE(dup);
  EXPECT_EQ(Count("SELECT count(*) FROM samples"), 1);
}

// Write() looks a record's stacks up in the ids of committed transactions
// before it queues; stacks it does not find (new ones, the truncated variant
// of a known one, those of a record that failed) go through the writer.
TEST_F(SqliteStoreTest, KnownStacksAreReusedAndNewOnesInterned) {
  bool dup;
  ASSERT_TRUE(store_->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main;work;hot", 3}}), &dup).ok());
  // Rolled back after interning "fresh": its ids must not be reused.
  SummaryRecord bad = MakeRecord("a", 2, "api", {}, kT0, {{"main;fresh", 1}, {"main;work;hot", 1}});
  bad.profile.samples[1].frames.push_back(999);
  EXPECT_FALSE(store_->Write(bad, &dup).ok());
  std::vector<FoldedStack> stacks = {{"main;work;hot", 5}, {"main;fresh", 2}};
  stacks.push_back({"main;work;hot", 7});
  stacks.back().truncated = true;
  ASSERT_TRUE(store_->Write(MakeRecord("a", 3, "api", {}, kT0, stacks), &dup).ok());
  ASSERT_TRUE(store_->Write(MakeRecord("a", 4, "api", {}, kT0, stacks), &dup).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM frames"), 4);  // main, work, hot, fresh
  EXPECT_EQ(Count("SELECT count(*) FROM stacks"), 3);
  ProfileQuery q;
  q.service = "api";
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  // (A query merges a truncated stack into the same frames' untruncated one.)
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;work;hot", 3 + 5 + 7 + 5 + 7},
                                                       {"main;fresh", 2 + 2}}));
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  Status s = OpenStore("sqlite:" + path_, &store_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("newer"), std::string::npos) << s.ToString();
}

TEST_F(SqliteStoreTest, CountersStoredPerSeriesBucketAndName) {
  SummaryRecord r = MakeRecord("a", 1, "api", {}, kT0, {{"main", 1}});
  r.counters = {{"samples_dropped_ring_full", 2}, {"unwind_failures", 0}};
  ASSERT_TRUE(store_->Write(r, nullptr).ok());
  r.sequence = 2;  // same bucket: summed into the same row
  ASSERT_TRUE(store_->Write(r, nullptr).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM counters"), 1);  // zero not stored
  EXPECT_EQ(Count("SELECT value FROM counters"), 4);
  // A record that fails leaves no counters behind.
  SummaryRecord bad = MakeRecord("a", 3, "api", {}, kT0, {{"main", 1}});
  bad.counters = {{"samples_dropped_ring_full", 100}};
  bad.profile.samples[0].frames.push_back(999);
  EXPECT_FALSE(store_->Write(bad, nullptr).ok());
  EXPECT_EQ(Count("SELECT value FROM counters"), 4);
}

// A database written by schema version 1 (no counters table) opens, keeps
// every sample, is migrated to the current version and stores counters.
// Series counts only the samples that matchers on sample labels select
// (SQLite only so far: the ClickHouse engine's Series does not yet).
TEST_F(SqliteStoreTest, Version1DatabaseIsMigrated) {
  ASSERT_TRUE(store_->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main;old", 7}}), nullptr).ok());
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE counters; DROP TABLE labeled_samples; ALTER TABLE samples "
                         "DROP COLUMN pid; UPDATE meta SET value='1' WHERE key='schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name='counters'"), 0);

  Status s = OpenStore("sqlite:" + path_, &store_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Count("SELECT value FROM meta WHERE key='schema_version'"), kSchemaVersion);
  EXPECT_EQ(kSchemaVersion, 4);
  EXPECT_EQ(Count("SELECT count(*) FROM pragma_table_info('samples') WHERE name='pid'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name='labeled_samples'"), 1);
  ProfileQuery q;
  q.service = "api";
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + 3600 * kSecond;
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;old", 7}}));
  std::map<std::string, int64_t> counters;
  ASSERT_TRUE(store_->Counters(q, &counters).ok());
  EXPECT_TRUE(counters.empty());
  // Idempotency rows survived the migration too.
  bool dup = false;
  ASSERT_TRUE(store_->Write(MakeRecord("a", 1, "api", {}, kT0, {{"main;old", 7}}), &dup).ok());
  EXPECT_TRUE(dup);
  SummaryRecord r = MakeRecord("a", 2, "api", {}, kT0 + 10 * kSecond, {{"main;new", 1}});
  r.counters = {{"samples_dropped_spool_full", 12}};
  ASSERT_TRUE(store_->Write(r, &dup).ok());
  ASSERT_TRUE(store_->Counters(q, &counters).ok());
  EXPECT_EQ(counters, (std::map<std::string, int64_t>{{"samples_dropped_spool_full", 12}}));
  // Opening again is a no-op.
  store_.reset();
  ASSERT_TRUE(OpenStore("sqlite:" + path_, &store_).ok());
  ASSERT_TRUE(store_->Counters(q, &counters).ok());
  EXPECT_EQ(counters.size(), 1u);
}

// A database of schema version 3 kept the pid in the series' labels (one
// series per process). It is migrated to version 4 (pid per row) keeping
// every sample and counter; selectors on pid select its old series by label
// and new rows by column, and LabelValues lists both.
TEST_F(SqliteStoreTest, Version3DatabaseWithPidSeriesIsMigrated) {
  for (int pid = 1; pid <= 2; ++pid) {
    SummaryRecord r = MakeRecord("old-" + std::to_string(pid), 1, "api", {}, kT0,
                                 {{"main;old", 10 * pid}});
    r.labels["pid"] = std::to_string(pid);  // as version 3 stored it
    r.counters = {{"samples_dropped_ring_full", pid}};
    ASSERT_TRUE(store_->Write(r, nullptr).ok());
  }
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE samples DROP COLUMN pid; "
                         "CREATE TABLE c3(series_id INTEGER NOT NULL, bucket_start INTEGER NOT "
                         "NULL, mode_id INTEGER NOT NULL, name_id INTEGER NOT NULL, value INTEGER "
                         "NOT NULL, PRIMARY KEY(series_id, bucket_start, mode_id, name_id)) "
                         "WITHOUT ROWID; INSERT INTO c3 SELECT series_id, bucket_start, mode_id, "
                         "name_id, value FROM counters; DROP TABLE counters; ALTER TABLE c3 "
                         "RENAME TO counters; UPDATE meta SET value='3' WHERE key='schema_version'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  Status s = OpenStore("sqlite:" + path_, &store_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Count("SELECT value FROM meta WHERE key='schema_version'"), 4);
  EXPECT_EQ(Count("SELECT count(*) FROM pragma_table_info('counters') WHERE name='pid'"), 1);
  EXPECT_EQ(Count("SELECT sum(value) FROM counters"), 3);
  // A new process of the same service: a new series without pid.
  SummaryRecord r = MakeRecord("new", 1, "api", {{"pid", "3"}}, kT0 + 10 * kSecond,
                               {{"main;new", 5}});
  r.counters = {{"samples_dropped_ring_full", 4}};
  ASSERT_TRUE(store_->Write(r, nullptr).ok());

  ProfileQuery q;
  q.service = "api";
  q.from_unix_nanos = kT0;
  q.to_unix_nanos = kT0 + 3600 * kSecond;
  Profile p;
  ASSERT_TRUE(store_->Query(q, &p).ok());
  EXPECT_EQ(Folded(p), (std::map<std::string, int64_t>{{"main;old", 30}, {"main;new", 5}}));
  for (const auto& [pid, want] : std::map<std::string, std::map<std::string, int64_t>>{
           {"1", {{"main;old", 10}}}, {"2", {{"main;old", 20}}}, {"3", {{"main;new", 5}}}}) {
    ProfileQuery one = q;
    one.matchers = {{"pid", LabelMatcher::kEq, pid}};
    ASSERT_TRUE(store_->Query(one, &p).ok());
    EXPECT_EQ(Folded(p), want) << "pid " << pid;
    std::map<std::string, int64_t> counters;
    ASSERT_TRUE(store_->Counters(one, &counters).ok());
    EXPECT_EQ(counters, (std::map<std::string, int64_t>{
                            {"samples_dropped_ring_full", std::stoll(pid) == 3 ? 4 : std::stoll(pid)}}))
        << "pid " << pid;
  }
  std::vector<std::string> values;
  ASSERT_TRUE(store_->LabelValues(q, "pid", &values).ok());
  EXPECT_EQ(values, (std::vector<std::string>{"1", "2", "3"}));
}

}  // namespace
}  // namespace testing
}  // namespace collector
}  // namespace stackstream
