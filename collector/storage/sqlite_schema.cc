#include "storage/sqlite_schema.h"

#include <string>

namespace stackstream {
namespace collector {

namespace {

constexpr char kDdl[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strings(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  value TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS frames(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  function_id INTEGER NOT NULL,
  file_id INTEGER NOT NULL,
  line INTEGER NOT NULL,
  module_id INTEGER NOT NULL,
  build_id_id INTEGER NOT NULL,
  inlined INTEGER NOT NULL,
  UNIQUE(function_id, file_id, line, module_id, build_id_id, inlined));
CREATE TABLE IF NOT EXISTS stacks(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  hash INTEGER NOT NULL,
  truncated INTEGER NOT NULL,
  frame_ids BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS stacks_by_hash ON stacks(hash);
CREATE TABLE IF NOT EXISTS series(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  service TEXT NOT NULL,
  labels BLOB NOT NULL UNIQUE,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  first_bucket INTEGER NOT NULL,
  last_bucket INTEGER NOT NULL,
  period_nanos INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_service ON series(service, last_bucket);
CREATE TABLE IF NOT EXISTS samples(
  id INTEGER PRIMARY KEY,
  series_id INTEGER NOT NULL,
  bucket_start INTEGER NOT NULL,
  mode_id INTEGER NOT NULL,
  stack_counts BLOB NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS samples_by_series_time ON samples(series_id, bucket_start);
CREATE TABLE IF NOT EXISTS labeled_samples(
  sample_id INTEGER PRIMARY KEY,
  entries BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ingested(
  agent_instance_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  window_start INTEGER NOT NULL,
  PRIMARY KEY(agent_instance_id, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ingested_by_time ON ingested(window_start);
CREATE TABLE IF NOT EXISTS counters(
  series_id INTEGER NOT NULL,
  bucket_start INTEGER NOT NULL,
  mode_id INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  name_id INTEGER NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY(series_id, bucket_start, mode_id, pid, name_id)) WITHOUT ROWID;
)sql";

// Version 4 (pid per write): the samples and counters tables of an older
// database get their pid column (0: the pid is in the series' labels).
constexpr char kAddSamplesPid[] = "ALTER TABLE samples ADD COLUMN pid INTEGER NOT NULL DEFAULT 0";
// Counters get pid in their key: the old table is renamed, kDdl creates the
// new one, the rows are copied over.
constexpr char kRenameOldCounters[] = "ALTER TABLE counters RENAME TO counters_v3";
constexpr char kCopyOldCounters[] = R"sql(
INSERT INTO counters(series_id, bucket_start, mode_id, pid, name_id, value)
  SELECT series_id, bucket_start, mode_id, 0, name_id, value FROM counters_v3;
DROP TABLE counters_v3;
)sql";

constexpr char kSamplesHasPid[] =
    "SELECT count(*) FROM pragma_table_info('samples') WHERE name = 'pid'";
constexpr char kCountersHasPid[] =
    "SELECT count(*) FROM pragma_table_info('counters') WHERE name = 'pid'";

Status HasColumn(SqliteConnection* conn, const char* sql, bool* has) {
  Status s;
  SqliteStatement st(conn->Prepare(sql, &s));
  if (!s.ok()) return s;
  if (st.Step() != SQLITE_ROW) return conn->Error("table info");
  *has = st.ColumnInt(0) > 0;
  return Status::OK();
}

Status AddPidColumns(SqliteConnection* conn) {
  bool has = false;
  Status s = HasColumn(conn, kSamplesHasPid, &has);
  if (s.ok() && !has) s = conn->Exec(kAddSamplesPid);
  if (s.ok()) s = HasColumn(conn, kCountersHasPid, &has);
  if (s.ok() && !has) {
    s = conn->Exec(kRenameOldCounters);
    if (s.ok()) s = conn->Exec(kDdl);
    if (s.ok()) s = conn->Exec(kCopyOldCounters);
  }
  return s;
}

}  // namespace

Status CreateSchema(SqliteConnection* conn) {
  Status s = conn->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = conn->Exec(kDdl);
  int64_t version = -1;  // -1: a new database (no version stored yet)
  if (s.ok()) {
    // Read the version first and finish the statement before writing meta.
    constexpr char kGet[] = "SELECT value FROM meta WHERE key='schema_version'";
    SqliteStatement get(conn->Prepare(kGet, &s));
    if (s.ok() && get.Step() == SQLITE_ROW) version = std::stoll(get.ColumnText(0));
  }
  if (s.ok()) {
    if (version > kSchemaVersion) {
      s = Status::Corruption("database schema version " + std::to_string(version) +
                             " is newer than this collector's (" +
                             std::to_string(kSchemaVersion) + ")");
    } else if (version < 0) {
      s = conn->Exec("INSERT INTO meta(key, value) VALUES('schema_version', '" +
                     std::to_string(kSchemaVersion) + "'), ('bucket_nanos', '" +
                     std::to_string(kBucketNanos) + "')");
    } else if (version < kSchemaVersion) {
      // kDdl above created the tables and indexes that were missing (versions
      // 2 and 3 only added some), in this same transaction; version 4 adds
      // columns. Every old row is kept.
      if (version < 4) s = AddPidColumns(conn);
      if (s.ok()) {
        s = conn->Exec("UPDATE meta SET value = '" + std::to_string(kSchemaVersion) +
                       "' WHERE key = 'schema_version'");
      }
    }
  }
  if (!s.ok()) {
    conn->Exec("ROLLBACK");
    return s;
  }
  return conn->Exec("COMMIT");
}

}  // namespace collector
}  // namespace stackstream
