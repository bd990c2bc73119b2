#include "storage/sqlite_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "storage/label_match.h"
#include "storage/process_labels.h"
#include "storage/sample_labels.h"
#include "storage/sqlite_schema.h"
#include "storage/varint.h"

namespace stackstream {
namespace collector {

namespace {

constexpr size_t kMaxCacheEntries = 1 << 20;
constexpr size_t kMaxIdleReaders = 8;

#define SS_PREPARE(var, conn, sql)                 \
  Status var##_status;                             \
  SqliteStatement var((conn)->Prepare(sql, &var##_status)); \
  if (!var##_status.ok()) return var##_status

#define SS_RETURN_IF_ERROR(expr)   \
  do {                             \
    Status _s = (expr);            \
    if (!_s.ok()) return _s;       \
  } while (0)

// --- SQL (statement cache keys are these arrays' addresses) ---
// Transaction control of a write batch, prepared once like the rest (each
// batch runs 2 + 2 per record of them).
constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kSavepoint[] = "SAVEPOINT record";
constexpr char kRelease[] = "RELEASE record";
constexpr char kRollbackTo[] = "ROLLBACK TO record";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";
constexpr char kInsertIngested[] =
    "INSERT OR IGNORE INTO ingested(agent_instance_id, sequence, window_start) VALUES(?1, ?2, ?3)";
constexpr char kSelectString[] = "SELECT id FROM strings WHERE value = ?1";
constexpr char kInsertString[] = "INSERT INTO strings(value) VALUES(?1)";
constexpr char kSelectFrameId[] =
    "SELECT id FROM frames WHERE function_id = ?1 AND file_id = ?2 AND line = ?3 AND "
    "module_id = ?4 AND build_id_id = ?5 AND inlined = ?6";
constexpr char kInsertFrame[] =
    "INSERT INTO frames(function_id, file_id, line, module_id, build_id_id, inlined) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kSelectStackByHash[] =
    "SELECT id, truncated, frame_ids FROM stacks WHERE hash = ?1";
constexpr char kInsertStack[] =
    "INSERT INTO stacks(hash, truncated, frame_ids) VALUES(?1, ?2, ?3)";
constexpr char kSelectSeriesId[] = "SELECT id FROM series WHERE labels = ?1";
constexpr char kInsertSeries[] =
    "INSERT INTO series(service, labels, first_seen, last_seen, first_bucket, last_bucket, "
    "period_nanos) VALUES(?1, ?2, ?3, ?4, ?5, ?5, ?6)";
constexpr char kUpdateSeries[] =
    "UPDATE series SET first_seen = min(first_seen, ?2), last_seen = max(last_seen, ?3), "
    "first_bucket = min(first_bucket, ?4), last_bucket = max(last_bucket, ?4), "
    "period_nanos = CASE WHEN ?5 > 0 THEN ?5 ELSE period_nanos END WHERE id = ?1";
constexpr char kInsertSamples[] =
    "INSERT INTO samples(series_id, bucket_start, mode_id, stack_counts, pid) "
    "VALUES(?1, ?2, ?3, ?4, ?5)";
// Counters of summaries in the same (series, bucket, mode) are summed in place.
constexpr char kInsertLabeled[] = "INSERT INTO labeled_samples(sample_id, entries) VALUES(?1, ?2)";
constexpr char kAddCounter[] =
    "INSERT INTO counters(series_id, bucket_start, mode_id, name_id, value, pid) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(series_id, bucket_start, mode_id, pid, name_id) "
    "DO UPDATE SET value = value + excluded.value";

constexpr char kSelectSeriesAll[] =
    "SELECT id, labels, period_nanos FROM series WHERE last_bucket >= ?1 AND first_bucket < ?2 "
    "ORDER BY id";
constexpr char kSelectSeriesOfService[] =
    "SELECT id, labels, period_nanos FROM series WHERE service = ?3 AND last_bucket >= ?1 AND "
    "first_bucket < ?2 ORDER BY id";
constexpr char kSelectModeId[] = "SELECT id FROM strings WHERE value = ?1";
constexpr char kSelectStringById[] = "SELECT value FROM strings WHERE id = ?1";
constexpr char kSelectSamples[] =
    "SELECT mode_id, bucket_start, stack_counts, pid FROM samples WHERE series_id = ?1 AND "
    "bucket_start >= ?2 AND bucket_start < ?3 AND (?4 = 0 OR mode_id = ?4) "
    "ORDER BY bucket_start, id";
// The same rows with their labelled samples (sample_labels.h), if any.
constexpr char kSelectSamplesLabeled[] =
    "SELECT s.mode_id, s.bucket_start, s.stack_counts, l.entries, s.pid FROM samples s "
    "LEFT JOIN labeled_samples l ON l.sample_id = s.id WHERE s.series_id = ?1 AND "
    "s.bucket_start >= ?2 AND s.bucket_start < ?3 AND (?4 = 0 OR s.mode_id = ?4) "
    "ORDER BY s.bucket_start, s.id";
constexpr char kSelectCounters[] =
    "SELECT name_id, pid, sum(value) FROM counters WHERE series_id = ?1 AND bucket_start >= ?2 "
    "AND bucket_start < ?3 AND (?4 = 0 OR mode_id = ?4) GROUP BY name_id, pid";
// The processes (pids) that wrote into a series in a range.
constexpr char kSelectPids[] =
    "SELECT DISTINCT pid FROM samples WHERE series_id = ?1 AND bucket_start >= ?2 AND "
    "bucket_start < ?3 AND pid != 0";
constexpr char kSelectStack[] = "SELECT truncated, frame_ids FROM stacks WHERE id = ?1";
constexpr char kSelectFrame[] =
    "SELECT f.line, f.inlined, fn.value, fi.value, mo.value, bi.value FROM frames f "
    "JOIN strings fn ON fn.id = f.function_id JOIN strings fi ON fi.id = f.file_id "
    "JOIN strings mo ON mo.id = f.module_id JOIN strings bi ON bi.id = f.build_id_id "
    "WHERE f.id = ?1";
constexpr char kListSeries[] =
    "SELECT service, labels, first_seen, last_seen FROM series ORDER BY service, id";

uint64_t Fnv1a(const std::string& data, bool truncated) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= truncated ? 0x9e3779b97f4a7c15ULL : 0;
  return h;
}

// (stack id, count) pairs <-> blob: ids ascending, delta-coded varints.
// Encoding sums the counts of equal ids.
std::string EncodeStackCounts(std::vector<std::pair<int64_t, int64_t>>* pairs) {
  std::sort(pairs->begin(), pairs->end());
  std::string out;
  int64_t prev = 0;
  for (size_t i = 0; i < pairs->size();) {
    const int64_t id = (*pairs)[i].first;
    int64_t count = 0;
    for (; i < pairs->size() && (*pairs)[i].first == id; ++i) count += (*pairs)[i].second;
    PutVarint(&out, static_cast<uint64_t>(id - prev));
    PutVarint(&out, static_cast<uint64_t>(count));
    prev = id;
  }
  return out;
}

// The samples row of "p" whose sample i has stack "stack_ids[i]" (every
// sample with a count > 0 has one): its stack_counts blob (empty: no
// samples) and its labelled samples' blob (empty: none).
void EncodeSamples(const Profile& p, const std::vector<int64_t>& stack_ids,
                   std::string* counts_blob, std::string* labeled_blob) {
  std::vector<std::pair<int64_t, int64_t>> pairs;
  pairs.reserve(p.samples.size());
  std::vector<LabeledEntry> labeled;
  for (size_t i = 0; i < p.samples.size(); ++i) {
    const ProfileSample& sample = p.samples[i];
    if (sample.count <= 0) continue;
    pairs.emplace_back(stack_ids[i], sample.count);
    if (!sample.labels.empty()) {
      labeled.push_back({static_cast<uint64_t>(stack_ids[i]), sample.count, sample.labels});
    }
  }
  *counts_blob = EncodeStackCounts(&pairs);
  labeled_blob->clear();
  if (!labeled.empty()) *labeled_blob = EncodeLabeledEntries(labeled);
}

// A stack's cache key: its frame ids' varints, then the truncated flag.
void StackKey(const std::string& frame_ids, bool truncated, std::string* key) {
  *key = frame_ids;
  key->push_back(truncated ? 1 : 0);
}

// Calls fn(stack_id, count) for each pair; false on a malformed blob.
template <typename Fn>
bool ForEachStackCount(const std::string& blob, Fn fn) {
  size_t pos = 0;
  uint64_t id = 0, delta, count;
  while (pos < blob.size()) {
    if (!GetVarint(blob, &pos, &delta) || !GetVarint(blob, &pos, &count)) return false;
    id += delta;
    fn(static_cast<int64_t>(id), static_cast<int64_t>(count));
  }
  return true;
}

// The bucket range [lo, hi) a query reads: every bucket overlapping [from, to).
struct BucketRange {
  int64_t lo;
  int64_t hi;
};
BucketRange RangeOf(const ProfileQuery& q) {
  BucketRange r;
  r.lo = q.from_unix_nanos <= 0 ? std::numeric_limits<int64_t>::min()
                                : BucketOf(q.from_unix_nanos);
  r.hi = q.to_unix_nanos <= 0 ? std::numeric_limits<int64_t>::max() : q.to_unix_nanos;
  return r;
}

// Runs a read transaction (one consistent snapshot) for its lifetime.
class ReadTxn {
 public:
  explicit ReadTxn(SqliteConnection* conn) : conn_(conn) { status_ = conn_->Exec("BEGIN"); }
  ~ReadTxn() {
    if (status_.ok()) conn_->Exec("COMMIT");
  }
  const Status& status() const { return status_; }

 private:
  SqliteConnection* conn_;
  Status status_;
};

}  // namespace

struct SqliteStore::Writer {
  const SummaryRecord* record = nullptr;
  // Per sample of record->profile: its stack id, 0 while not known.
  std::vector<int64_t> stack_ids;
  bool encoded = false;  // every stack is known and the two blobs are set
  std::string counts_blob, labeled_blob;  // EncodeSamples
  bool duplicate = false;
  bool done = false;
  Status status;
  std::condition_variable cv;
};

// Leases a reader connection from the pool for its lifetime.
class SqliteStore::ReadLease {
 public:
  explicit ReadLease(SqliteStore* store) : store_(store) { status_ = store->AcquireReader(&conn_); }
  ~ReadLease() {
    if (conn_) store_->ReleaseReader(std::move(conn_));
  }
  const Status& status() const { return status_; }
  SqliteConnection* get() const { return conn_.get(); }

 private:
  SqliteStore* store_;
  std::unique_ptr<SqliteConnection> conn_;
  Status status_;
};

Status SqliteStore::Open(const std::string& path, std::unique_ptr<SqliteStore>* out) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
  SS_RETURN_IF_ERROR(SqliteConnection::Open(path, &store->writer_));
  Status s = CreateSchema(store->writer_.get());
  if (!s.ok()) return Status(s.code() == Status::kCorruption ? s : Status::IOError(
                                 "cannot initialize " + path + ": " + s.message()));
  *out = std::move(store);
  return Status::OK();
}

SqliteStore::~SqliteStore() = default;

// ---------------------------------------------------------------- writes

Status SqliteStore::Write(const SummaryRecord& record, bool* duplicate) {
  Writer w;
  w.record = &record;
  ResolveKnown(record.profile, &w);
  group_commit_.Run(&w, [this](const std::vector<Writer*>& batch) {
    std::lock_guard<std::mutex> writer_lock(writer_mu_);
    CommitBatch(batch);
  });
  if (duplicate != nullptr) *duplicate = w.duplicate;
  return w.status;
}

void SqliteStore::ResolveKnown(const Profile& p, Writer* w) {
  w->stack_ids.assign(p.samples.size(), 0);
  std::vector<int64_t> frame_ids(p.frames.size(), -1);  // -1: not looked up; 0: unknown
  std::string key;  // as StackKey()
  bool all = true;
  {
    std::shared_lock<std::shared_mutex> lock(committed_mu_);
    for (size_t i = 0; i < p.samples.size(); ++i) {
      const ProfileSample& sample = p.samples[i];
      if (sample.count <= 0) continue;
      key.clear();
      bool known = true;
      for (uint32_t f : sample.frames) {
        if (f >= frame_ids.size()) {  // WriteOne reports it
          known = false;
          break;
        }
        int64_t& id = frame_ids[f];
        if (id < 0) {
          auto it = frame_ids_.find(p.frames[f]);
          id = it == frame_ids_.end() ? 0 : it->second;
        }
        if (id == 0) {
          known = false;
          break;
        }
        PutVarint(&key, static_cast<uint64_t>(id));
      }
      if (known) {
        key.push_back(sample.truncated ? 1 : 0);
        auto it = stack_ids_.find(key);
        if (it != stack_ids_.end()) {
          w->stack_ids[i] = it->second;
        } else {
          known = false;
        }
      }
      all = all && known;
    }
  }
  if (all) {
    EncodeSamples(p, w->stack_ids, &w->counts_blob, &w->labeled_blob);
    w->encoded = true;
  }
}

void SqliteStore::CommitBatch(const std::vector<Writer*>& batch) {
  auto run = [this](const char* sql) {
    SS_PREPARE(st, writer_.get(), sql);
    return st.Run();
  };
  Status s = run(kBegin);
  if (!s.ok()) {
    for (Writer* w : batch) w->status = s;
    return;
  }
  for (Writer* w : batch) {
    Status rs = run(kSavepoint);
    if (rs.ok()) rs = WriteOne(w);
    if (rs.ok()) {
      rs = run(kRelease);
    } else {
      run(kRollbackTo);
      run(kRelease);
      ClearWriteCaches();
      w->duplicate = false;
    }
    w->status = rs;
  }
  s = run(kCommit);
  if (!s.ok()) {
    run(kRollback);
    ClearWriteCaches();
    for (Writer* w : batch) {
      if (w->status.ok()) w->status = s;
      w->duplicate = false;
    }
    return;
  }
  if (new_frame_ids_.empty() && new_stack_ids_.empty()) return;
  std::unique_lock<std::shared_mutex> lock(committed_mu_);
  if (frame_ids_.size() + new_frame_ids_.size() > kMaxCacheEntries) frame_ids_.clear();
  if (stack_ids_.size() + new_stack_ids_.size() > kMaxCacheEntries) stack_ids_.clear();
  frame_ids_.merge(new_frame_ids_);
  stack_ids_.merge(new_stack_ids_);
  new_frame_ids_.clear();
  new_stack_ids_.clear();
}

void SqliteStore::ClearWriteCaches() {
  string_ids_.clear();
  new_frame_ids_.clear();
  new_stack_ids_.clear();
  series_ids_.clear();
}

Status SqliteStore::WriteOne(Writer* w) {
  const SummaryRecord& record = *w->record;
  bool* duplicate = &w->duplicate;
  *duplicate = false;
  if (record.service.empty()) return Status::InvalidArgument("record has no service");
  if (record.agent_instance_id.empty()) {
    return Status::InvalidArgument("record has no agent_instance_id");
  }
  const Profile& p = record.profile;
  const int64_t bucket = BucketOf(p.start_unix_nanos);
  {
    SS_PREPARE(st, writer_.get(), kInsertIngested);
    st.BindText(1, record.agent_instance_id)
        .Bind(2, static_cast<int64_t>(record.sequence))
        .Bind(3, p.start_unix_nanos);
    SS_RETURN_IF_ERROR(st.Run());
    if (writer_->Changes() == 0) {
      *duplicate = true;
      return Status::OK();
    }
  }
  int64_t series_id = 0, mode_id = 0;
  SS_RETURN_IF_ERROR(UpsertSeries(record, bucket, &series_id));
  SS_RETURN_IF_ERROR(InternString(p.mode, &mode_id));
  if (!w->encoded) {  // intern the stacks ResolveKnown did not find
    std::vector<int64_t> frame_ids(p.frames.size(), 0);  // 0: not interned yet
    std::string blob;
    for (size_t i = 0; i < p.samples.size(); ++i) {
      const ProfileSample& sample = p.samples[i];
      if (sample.count <= 0 || w->stack_ids[i] != 0) continue;
      blob.clear();
      for (uint32_t f : sample.frames) {
        if (f >= frame_ids.size()) {
          return Status::InvalidArgument("sample frame index out of range");
        }
        if (frame_ids[f] == 0) SS_RETURN_IF_ERROR(InternFrame(p.frames[f], &frame_ids[f]));
        PutVarint(&blob, static_cast<uint64_t>(frame_ids[f]));
      }
      SS_RETURN_IF_ERROR(InternStack(blob, sample.truncated, &w->stack_ids[i]));
    }
    EncodeSamples(p, w->stack_ids, &w->counts_blob, &w->labeled_blob);
    w->encoded = true;
  }
  // Drop counters go in with the samples, in the same savepoint: a duplicate
  // summary returned above, so its counters are never added twice.
  for (const auto& [name, value] : record.counters) {
    if (name.empty() || value == 0) continue;
    int64_t name_id = 0;
    SS_RETURN_IF_ERROR(InternString(name, &name_id));
    SS_PREPARE(st, writer_.get(), kAddCounter);
    st.Bind(1, series_id).Bind(2, bucket).Bind(3, mode_id).Bind(4, name_id).Bind(5, value)
        .Bind(6, record.pid);
    SS_RETURN_IF_ERROR(st.Run());
  }
  // An empty in-use snapshot is data (nothing live any more): stored too.
  if (w->counts_blob.empty() && !IsGaugeSampleType(p.mode)) return Status::OK();
  SS_PREPARE(st, writer_.get(), kInsertSamples);
  st.Bind(1, series_id).Bind(2, bucket).Bind(3, mode_id).BindBlob(4, w->counts_blob)
      .Bind(5, record.pid);
  SS_RETURN_IF_ERROR(st.Run());
  if (!w->labeled_blob.empty()) {
    const int64_t sample_id = writer_->LastInsertRowid();
    SS_PREPARE(ls, writer_.get(), kInsertLabeled);
    ls.Bind(1, sample_id).BindBlob(2, w->labeled_blob);
    SS_RETURN_IF_ERROR(ls.Run());
  }
  return Status::OK();
}

Status SqliteStore::InternString(const std::string& value, int64_t* id) {
  auto it = string_ids_.find(value);
  if (it != string_ids_.end()) {
    *id = it->second;
    return Status::OK();
  }
  {
    SS_PREPARE(sel, writer_.get(), kSelectString);
    sel.BindText(1, value);
    int rc = sel.Step();
    if (rc == SQLITE_ROW) {
      *id = sel.ColumnInt(0);
    } else if (rc != SQLITE_DONE) {
      return writer_->Error("select string");
    } else {
      SS_PREPARE(ins, writer_.get(), kInsertString);
      ins.BindText(1, value);
      SS_RETURN_IF_ERROR(ins.Run());
      *id = sqlite3_last_insert_rowid(writer_->db());
    }
  }
  if (string_ids_.size() >= kMaxCacheEntries) string_ids_.clear();
  string_ids_.emplace(value, *id);
  return Status::OK();
}

Status SqliteStore::InternFrame(const Frame& frame, int64_t* id) {
  auto it = frame_ids_.find(frame);
  if (it != frame_ids_.end() || (it = new_frame_ids_.find(frame)) != new_frame_ids_.end()) {
    *id = it->second;
    return Status::OK();
  }
  int64_t ids[4];
  SS_RETURN_IF_ERROR(InternString(frame.function, &ids[0]));
  SS_RETURN_IF_ERROR(InternString(frame.file, &ids[1]));
  SS_RETURN_IF_ERROR(InternString(frame.module, &ids[2]));
  SS_RETURN_IF_ERROR(InternString(frame.build_id, &ids[3]));
  {
    SS_PREPARE(sel, writer_.get(), kSelectFrameId);
    sel.Bind(1, ids[0]).Bind(2, ids[1]).Bind(3, frame.line).Bind(4, ids[2]).Bind(5, ids[3]).Bind(
        6, frame.inlined ? 1 : 0);
    int rc = sel.Step();
    if (rc == SQLITE_ROW) {
      *id = sel.ColumnInt(0);
    } else if (rc != SQLITE_DONE) {
      return writer_->Error("select frame");
    } else {
      SS_PREPARE(ins, writer_.get(), kInsertFrame);
      ins.Bind(1, ids[0]).Bind(2, ids[1]).Bind(3, frame.line).Bind(4, ids[2]).Bind(5, ids[3]).Bind(
          6, frame.inlined ? 1 : 0);
      SS_RETURN_IF_ERROR(ins.Run());
      *id = sqlite3_last_insert_rowid(writer_->db());
    }
  }
  new_frame_ids_.emplace(frame, *id);
  return Status::OK();
}

Status SqliteStore::InternStack(const std::string& frame_ids, bool truncated, int64_t* id) {
  std::string key;
  StackKey(frame_ids, truncated, &key);
  auto it = stack_ids_.find(key);
  if (it != stack_ids_.end() || (it = new_stack_ids_.find(key)) != new_stack_ids_.end()) {
    *id = it->second;
    return Status::OK();
  }
  const int64_t hash = static_cast<int64_t>(Fnv1a(frame_ids, truncated));
  bool found = false;
  {
    SS_PREPARE(sel, writer_.get(), kSelectStackByHash);
    sel.Bind(1, hash);
    int rc;
    while ((rc = sel.Step()) == SQLITE_ROW) {
      if ((sel.ColumnInt(1) != 0) == truncated && sel.ColumnBlob(2) == frame_ids) {
        *id = sel.ColumnInt(0);
        found = true;
        break;
      }
    }
    if (!found && rc != SQLITE_DONE) return writer_->Error("select stack");
  }
  if (!found) {
    SS_PREPARE(ins, writer_.get(), kInsertStack);
    ins.Bind(1, hash).Bind(2, truncated ? 1 : 0).BindBlob(3, frame_ids);
    SS_RETURN_IF_ERROR(ins.Run());
    *id = sqlite3_last_insert_rowid(writer_->db());
  }
  new_stack_ids_.emplace(std::move(key), *id);
  return Status::OK();
}

Status SqliteStore::UpsertSeries(const SummaryRecord& record, int64_t bucket, int64_t* id) {
  Labels labels = record.labels;
  labels["service"] = record.service;
  std::string key = EncodeLabels(labels);
  const Profile& p = record.profile;
  const int64_t first = p.start_unix_nanos;
  const int64_t last = std::max(p.start_unix_nanos, p.end_unix_nanos);
  // The series' period is its clock-mode records' (heap types have period 1).
  const int64_t period = IsHeapSampleType(p.mode) ? 0 : p.period_nanos;
  auto it = series_ids_.find(key);
  if (it != series_ids_.end()) {
    *id = it->second;
  } else {
    SS_PREPARE(sel, writer_.get(), kSelectSeriesId);
    sel.BindBlob(1, key);
    int rc = sel.Step();
    if (rc == SQLITE_ROW) {
      *id = sel.ColumnInt(0);
    } else if (rc != SQLITE_DONE) {
      return writer_->Error("select series");
    } else {
      SS_PREPARE(ins, writer_.get(), kInsertSeries);
      ins.BindText(1, record.service).BindBlob(2, key).Bind(3, first).Bind(4, last).Bind(5, bucket)
          .Bind(6, period);
      SS_RETURN_IF_ERROR(ins.Run());
      *id = sqlite3_last_insert_rowid(writer_->db());
    }
    if (series_ids_.size() >= kMaxCacheEntries) series_ids_.clear();
    series_ids_.emplace(key, *id);
  }
  SS_PREPARE(up, writer_.get(), kUpdateSeries);
  up.Bind(1, *id).Bind(2, first).Bind(3, last).Bind(4, bucket).Bind(5, period);
  return up.Run();
}

Status SqliteStore::DeleteBefore(int64_t cutoff_unix_nanos) {
  std::lock_guard<std::mutex> writer_lock(writer_mu_);
  // A bucket b is deleted when it ends at or before the cutoff: b + B <= cutoff.
  const int64_t limit = cutoff_unix_nanos - kBucketNanos + 1;  // delete b < limit
  const int64_t first_kept = BucketOf(cutoff_unix_nanos);
  const std::string l = std::to_string(limit), k = std::to_string(first_kept);
  Status s = writer_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  int64_t deleted = 0;
  s = writer_->Exec("DELETE FROM labeled_samples WHERE sample_id IN (SELECT id FROM samples WHERE "
                    "series_id IN (SELECT id FROM series WHERE first_bucket < " + l +
                    ") AND bucket_start < " + l + ")");
  if (s.ok()) s = writer_->Exec("DELETE FROM samples WHERE series_id IN (SELECT id FROM series WHERE "
                    "first_bucket < " + l + ") AND bucket_start < " + l);
  if (s.ok()) {
    deleted = writer_->Changes();
    s = writer_->Exec("DELETE FROM counters WHERE series_id IN (SELECT id FROM series WHERE "
                      "first_bucket < " + l + ") AND bucket_start < " + l);
    deleted += writer_->Changes();
  }
  if (s.ok()) {
    s = writer_->Exec("DELETE FROM series WHERE last_bucket < " + l +
                      ";UPDATE series SET first_bucket = max(first_bucket, " + k +
                      "), first_seen = max(first_seen, " + k + ") WHERE first_bucket < " + k +
                      ";DELETE FROM ingested WHERE window_start < " + k);
  }
  if (s.ok()) s = writer_->Exec("COMMIT");
  if (!s.ok()) writer_->Exec("ROLLBACK");
  ClearWriteCaches();
  if (s.ok() && deleted > 0) writer_->Exec("PRAGMA wal_checkpoint(PASSIVE)");
  return s;
}

// ---------------------------------------------------------------- reads

Status SqliteStore::AcquireReader(std::unique_ptr<SqliteConnection>* out) {
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    if (!idle_readers_.empty()) {
      *out = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return Status::OK();
    }
  }
  return SqliteConnection::Open(path_, out);
}

void SqliteStore::ReleaseReader(std::unique_ptr<SqliteConnection> conn) {
  std::lock_guard<std::mutex> lock(readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(conn));
}

Status SqliteStore::MatchSeries(SqliteConnection* conn, const ProfileQuery& query,
                                const CompiledMatchers& matchers, std::vector<SeriesRow>* out) {
  out->clear();
  BucketRange r = RangeOf(query);
  const char* sql = query.service.empty() ? kSelectSeriesAll : kSelectSeriesOfService;
  SS_PREPARE(st, conn, sql);
  st.Bind(1, r.lo).Bind(2, r.hi);
  if (!query.service.empty()) st.BindText(3, query.service);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    SeriesRow row;
    row.id = st.ColumnInt(0);
    if (!DecodeLabels(st.ColumnBlob(1), &row.labels)) {
      return Status::Corruption("series " + std::to_string(row.id) + ": bad label set");
    }
    row.period_nanos = st.ColumnInt(2);
    if (matchers.Matches(row.labels)) out->push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return conn->Error("select series");
  return Status::OK();
}

Status SqliteStore::HeapModeIds(SqliteConnection* conn, std::set<int64_t>* out) {
  for (const char* type : kHeapSampleTypes) {
    int64_t id = 0;
    SS_RETURN_IF_ERROR(LookupModeId(conn, type, &id));
    if (id > 0) out->insert(id);
  }
  return Status::OK();
}

Status SqliteStore::LookupModeId(SqliteConnection* conn, const std::string& mode, int64_t* id) {
  *id = 0;
  if (mode.empty()) return Status::OK();
  SS_PREPARE(st, conn, kSelectModeId);
  st.BindText(1, mode);
  int rc = st.Step();
  if (rc == SQLITE_ROW) {
    *id = st.ColumnInt(0);
  } else if (rc == SQLITE_DONE) {
    *id = -1;  // never stored: matches nothing
  } else {
    return conn->Error("select mode");
  }
  return Status::OK();
}

Status SqliteStore::LoadStack(SqliteConnection* conn, int64_t id, StackRow* out) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = stack_cache_.find(id);
    if (it != stack_cache_.end()) {
      *out = it->second;
      return Status::OK();
    }
  }
  SS_PREPARE(st, conn, kSelectStack);
  st.Bind(1, id);
  int rc = st.Step();
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) return Status::Corruption("stack " + std::to_string(id) + " missing");
    return conn->Error("select stack");
  }
  out->truncated = st.ColumnInt(0) != 0;
  out->frame_ids.clear();
  std::string blob = st.ColumnBlob(1);
  size_t pos = 0;
  while (pos < blob.size()) {
    uint64_t v;
    if (!GetVarint(blob, &pos, &v)) {
      return Status::Corruption("stack " + std::to_string(id) + ": bad frame list");
    }
    out->frame_ids.push_back(static_cast<int64_t>(v));
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (stack_cache_.size() >= kMaxCacheEntries) stack_cache_.clear();
  stack_cache_.emplace(id, *out);
  return Status::OK();
}

Status SqliteStore::LoadFrame(SqliteConnection* conn, int64_t id, Frame* out) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = frame_cache_.find(id);
    if (it != frame_cache_.end()) {
      *out = it->second;
      return Status::OK();
    }
  }
  SS_PREPARE(st, conn, kSelectFrame);
  st.Bind(1, id);
  int rc = st.Step();
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) return Status::Corruption("frame " + std::to_string(id) + " missing");
    return conn->Error("select frame");
  }
  out->line = st.ColumnInt(0);
  out->inlined = st.ColumnInt(1) != 0;
  out->function = st.ColumnText(2);
  out->file = st.ColumnText(3);
  out->module = st.ColumnText(4);
  out->build_id = st.ColumnText(5);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (frame_cache_.size() >= kMaxCacheEntries) frame_cache_.clear();
  frame_cache_.emplace(id, *out);
  return Status::OK();
}

Status SqliteStore::Query(const ProfileQuery& sample_query, Profile* out) {
  *out = Profile();
  ProfileQuery query = sample_query;
  std::vector<LabelMatcher> sample_matchers, process_matchers;
  TakeSampleMatchers(&query, &sample_matchers);
  TakeProcessMatchers(&query, &process_matchers);
  LabeledCounts counts;
  SS_RETURN_IF_ERROR(LabeledCounts::Create(sample_matchers, &counts));
  ProcessFilter processes;
  SS_RETURN_IF_ERROR(ProcessFilter::Create(process_matchers, &processes));
  CompiledMatchers matchers;
  SS_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  ReadLease lease(this);
  SS_RETURN_IF_ERROR(lease.status());
  SqliteConnection* conn = lease.get();
  ReadTxn txn(conn);
  SS_RETURN_IF_ERROR(txn.status());

  std::vector<SeriesRow> series;
  SS_RETURN_IF_ERROR(MatchSeries(conn, query, matchers, &series));
  int64_t mode_id = 0;
  SS_RETURN_IF_ERROR(LookupModeId(conn, query.mode, &mode_id));
  if (mode_id < 0) series.clear();
  // In-use heap types are gauges: each process (series and pid) contributes
  // its latest snapshot in the range, never a sum of snapshots. A query for
  // no mode in particular leaves the heap types out (bytes and samples do
  // not add up).
  const bool gauge = IsGaugeSampleType(query.mode);
  std::set<int64_t> heap_modes;
  if (query.mode.empty()) SS_RETURN_IF_ERROR(HeapModeIds(conn, &heap_modes));

  BucketRange r = RangeOf(query);
  std::map<int64_t, int64_t> mode_counts;       // mode id -> samples
  int64_t min_bucket = std::numeric_limits<int64_t>::max(), max_bucket = 0, period = 0;
  std::string blob, labeled;
  auto add_row = [&](int64_t mode, int64_t bucket, const std::string& data,
                     const std::string& labeled_data, int64_t series_id) {
    int64_t n = 0;
    bool ok = ForEachStackCount(data, [&](int64_t stack_id, int64_t count) {
      counts.AddStack(static_cast<uint64_t>(stack_id), count);
      n += count;
    });
    ok = ok && counts.AddLabeled(labeled_data);
    if (!ok) return Status::Corruption("samples of series " + std::to_string(series_id));
    mode_counts[mode] += n;
    min_bucket = std::min(min_bucket, bucket);
    max_bucket = std::max(max_bucket, bucket);
    return Status::OK();
  };
  struct Snapshot {
    int64_t mode = 0, bucket = 0;
    std::string data, labeled;
  };
  std::map<int64_t, Snapshot> latest;  // gauge: pid -> its last snapshot in the series
  for (const SeriesRow& s : series) {
    SS_PREPARE(st, conn, kSelectSamplesLabeled);
    st.Bind(1, s.id).Bind(2, r.lo).Bind(3, r.hi).Bind(4, mode_id);
    int rc;
    bool any = false;
    latest.clear();
    while ((rc = st.Step()) == SQLITE_ROW) {
      const int64_t mode = st.ColumnInt(0), bucket = st.ColumnInt(1), pid = st.ColumnInt(4);
      if (heap_modes.count(mode) != 0 || !processes.Selects(pid, s.labels)) continue;
      any = true;
      blob = st.ColumnBlob(2);
      labeled = st.ColumnBlob(3);  // empty when the row has no labelled samples
      if (gauge) {  // rows come oldest first: keep each process's last
        Snapshot& snap = latest[pid];
        snap.mode = mode;
        snap.bucket = bucket;
        snap.data.swap(blob);
        snap.labeled.swap(labeled);
        continue;
      }
      SS_RETURN_IF_ERROR(add_row(mode, bucket, blob, labeled, s.id));
    }
    if (rc != SQLITE_DONE) return conn->Error("select samples");
    for (const auto& [pid, snap] : latest) {
      SS_RETURN_IF_ERROR(add_row(snap.mode, snap.bucket, snap.data, snap.labeled, s.id));
    }
    if (any && period == 0) period = s.period_nanos;
  }

  ProfileBuilder builder;
  Profile* p = builder.mutable_profile();
  if (!query.mode.empty()) p->mode = query.mode;
  if (!mode_counts.empty()) {
    auto best = std::max_element(mode_counts.begin(), mode_counts.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    if (query.mode.empty()) {
      SS_PREPARE(st, conn, kSelectStringById);
      st.Bind(1, best->first);
      if (st.Step() == SQLITE_ROW) p->mode = st.ColumnText(0);
    }
    p->start_unix_nanos = min_bucket;
    p->end_unix_nanos = max_bucket + kBucketNanos;
  }
  if (IsHeapSampleType(query.mode)) period = 1;  // amounts (store.h)
  if (period > 0) p->period_nanos = period;

  std::unordered_map<int64_t, uint32_t> frame_index;  // db frame id -> profile index
  StackRow row;
  int64_t row_id = -1;
  Frame frame;
  std::vector<uint32_t> indexes;
  SS_RETURN_IF_ERROR(counts.ForEach(
      [&](uint64_t stack, int64_t count, const SampleLabels& labels) -> Status {
        if (static_cast<int64_t>(stack) != row_id) {
          row_id = static_cast<int64_t>(stack);
          SS_RETURN_IF_ERROR(LoadStack(conn, row_id, &row));
          indexes.clear();
          for (int64_t fid : row.frame_ids) {
            auto it = frame_index.find(fid);
            if (it == frame_index.end()) {
              SS_RETURN_IF_ERROR(LoadFrame(conn, fid, &frame));
              it = frame_index.emplace(fid, builder.InternFrame(frame)).first;
            }
            indexes.push_back(it->second);
          }
        }
        builder.AddSample(indexes, count, row.truncated, labels);
        return Status::OK();
      }));
  *out = builder.Release();
  return Status::OK();
}

Status SqliteStore::Series(const ProfileQuery& sample_query, int64_t step_nanos,
                           const std::string& function, std::vector<SeriesPoint>* out) {
  out->clear();
  if (step_nanos <= 0) return Status::InvalidArgument("step must be positive");
  // Matchers on sample labels (sample_labels.h) count only the samples they select.
  ProfileQuery query = sample_query;
  std::vector<LabelMatcher> sample_matchers, process_matchers;
  TakeSampleMatchers(&query, &sample_matchers);
  TakeProcessMatchers(&query, &process_matchers);
  LabeledCounts sample_filter;
  SS_RETURN_IF_ERROR(LabeledCounts::Create(sample_matchers, &sample_filter));
  ProcessFilter processes;
  SS_RETURN_IF_ERROR(ProcessFilter::Create(process_matchers, &processes));
  CompiledMatchers matchers;
  SS_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  ReadLease lease(this);
  SS_RETURN_IF_ERROR(lease.status());
  SqliteConnection* conn = lease.get();
  ReadTxn txn(conn);
  SS_RETURN_IF_ERROR(txn.status());

  std::vector<SeriesRow> series;
  SS_RETURN_IF_ERROR(MatchSeries(conn, query, matchers, &series));
  int64_t mode_id = 0;
  SS_RETURN_IF_ERROR(LookupModeId(conn, query.mode, &mode_id));
  if (mode_id < 0) series.clear();

  const bool gauge = IsGaugeSampleType(query.mode);  // per step: latest snapshot of each process
  std::set<int64_t> heap_modes;
  if (query.mode.empty()) SS_RETURN_IF_ERROR(HeapModeIds(conn, &heap_modes));
  const BucketRange r = RangeOf(query);
  const int64_t origin = query.from_unix_nanos > 0 ? query.from_unix_nanos : 0;
  auto step_of = [&](int64_t bucket) {
    if (bucket <= origin) return origin;
    return origin + (bucket - origin) / step_nanos * step_nanos;
  };
  std::map<int64_t, SeriesPoint> points;
  std::unordered_map<int64_t, bool> has_function;  // stack id -> contains "function"
  StackRow row;
  Frame frame;
  std::string blob;
  Status inner;
  auto add_blob = [&](int64_t t, const std::string& data, const std::string& labeled,
                      int64_t series_id) {
    SeriesPoint& pt = points[t];
    pt.unix_nanos = t;
    auto add = [&](int64_t stack_id, int64_t n) {
        pt.total += n;
        if (function.empty() || !inner.ok()) return;
        auto it = has_function.find(stack_id);
        if (it == has_function.end()) {
          bool found = false;
          inner = LoadStack(conn, stack_id, &row);
          for (size_t i = 0; inner.ok() && i < row.frame_ids.size(); ++i) {
            inner = LoadFrame(conn, row.frame_ids[i], &frame);
            if (inner.ok() && frame.function == function) {
              found = true;
              break;
            }
          }
          it = has_function.emplace(stack_id, found).first;
        }
        if (it->second) pt.matched += n;
    };
    bool ok;
    if (sample_matchers.empty()) {
      ok = ForEachStackCount(data, add);
    } else {  // only the samples whose labels the matchers select
      LabeledCounts row_counts = sample_filter;
      ok = ForEachStackCount(data, [&](int64_t stack_id, int64_t n) {
        row_counts.AddStack(static_cast<uint64_t>(stack_id), n);
      });
      ok = ok && row_counts.AddLabeled(labeled);
      if (ok) {
        row_counts.ForEach([&](uint64_t stack, int64_t n, const SampleLabels&) {
          add(static_cast<int64_t>(stack), n);
          return Status::OK();
        });
      }
    }
    if (!ok) return Status::Corruption("samples of series " + std::to_string(series_id));
    return inner;
  };
  for (const SeriesRow& s : series) {
    SS_PREPARE(st, conn, sample_matchers.empty() ? kSelectSamples : kSelectSamplesLabeled);
    st.Bind(1, s.id).Bind(2, r.lo).Bind(3, r.hi).Bind(4, mode_id);
    int rc;
    // gauge: (step, pid) -> the process's last snapshot in the step (and
    // its labelled samples)
    std::map<std::pair<int64_t, int64_t>, std::pair<std::string, std::string>> latest;
    const std::string no_labels;
    const int pid_column = sample_matchers.empty() ? 3 : 4;
    while ((rc = st.Step()) == SQLITE_ROW) {
      if (heap_modes.count(st.ColumnInt(0)) != 0) continue;
      if (!processes.Selects(st.ColumnInt(pid_column), s.labels)) continue;
      int64_t t = step_of(st.ColumnInt(1));
      const std::string labeled = sample_matchers.empty() ? no_labels : st.ColumnBlob(3);
      if (gauge) {
        latest[{t, st.ColumnInt(pid_column)}] = {st.ColumnBlob(2), labeled};
        continue;
      }
      SS_RETURN_IF_ERROR(add_blob(t, st.ColumnBlob(2), labeled, s.id));
    }
    if (rc != SQLITE_DONE) return conn->Error("select samples");
    for (const auto& [key, data] : latest) {
      SS_RETURN_IF_ERROR(add_blob(key.first, data.first, data.second, s.id));
    }
  }
  for (auto& kv : points) {
    // Buckets where the sample matchers selected nothing have no data.
    if (!sample_matchers.empty() && kv.second.total == 0) continue;
    out->push_back(kv.second);
  }
  return Status::OK();
}

Status SqliteStore::Counters(const ProfileQuery& counters_query,
                             std::map<std::string, int64_t>* out) {
  out->clear();
  ProfileQuery query = counters_query;
  std::vector<LabelMatcher> process_matchers;
  TakeProcessMatchers(&query, &process_matchers);
  ProcessFilter processes;
  SS_RETURN_IF_ERROR(ProcessFilter::Create(process_matchers, &processes));
  CompiledMatchers matchers;
  SS_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  ReadLease lease(this);
  SS_RETURN_IF_ERROR(lease.status());
  SqliteConnection* conn = lease.get();
  ReadTxn txn(conn);
  SS_RETURN_IF_ERROR(txn.status());

  std::vector<SeriesRow> series;
  SS_RETURN_IF_ERROR(MatchSeries(conn, query, matchers, &series));
  int64_t mode_id = 0;
  SS_RETURN_IF_ERROR(LookupModeId(conn, query.mode, &mode_id));
  if (mode_id < 0) series.clear();

  const BucketRange r = RangeOf(query);
  std::map<int64_t, int64_t> by_name_id;
  for (const SeriesRow& s : series) {
    SS_PREPARE(st, conn, kSelectCounters);
    st.Bind(1, s.id).Bind(2, r.lo).Bind(3, r.hi).Bind(4, mode_id);
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      if (processes.Selects(st.ColumnInt(1), s.labels)) by_name_id[st.ColumnInt(0)] += st.ColumnInt(2);
    }
    if (rc != SQLITE_DONE) return conn->Error("select counters");
  }
  for (const auto& [name_id, total] : by_name_id) {
    if (total == 0) continue;
    SS_PREPARE(st, conn, kSelectStringById);
    st.Bind(1, name_id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) {
      return Status::Corruption("counter name " + std::to_string(name_id) + " missing");
    }
    if (rc != SQLITE_ROW) return conn->Error("select counter name");
    (*out)[st.ColumnText(0)] += total;
  }
  return Status::OK();
}

Status SqliteStore::ListServices(std::vector<ServiceInfo>* out) {
  out->clear();
  ReadLease lease(this);
  SS_RETURN_IF_ERROR(lease.status());
  SqliteConnection* conn = lease.get();
  SS_PREPARE(st, conn, kListSeries);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    std::string service = st.ColumnText(0);
    Labels labels;
    if (!DecodeLabels(st.ColumnBlob(1), &labels)) return Status::Corruption("bad label set");
    int64_t first = st.ColumnInt(2), last = st.ColumnInt(3);
    if (out->empty() || out->back().service != service) {
      ServiceInfo info;
      info.service = service;
      info.first_seen_unix_nanos = first;
      info.last_seen_unix_nanos = last;
      out->push_back(std::move(info));
    }
    ServiceInfo& info = out->back();
    info.label_sets.push_back(std::move(labels));
    info.first_seen_unix_nanos = std::min(info.first_seen_unix_nanos, first);
    info.last_seen_unix_nanos = std::max(info.last_seen_unix_nanos, last);
  }
  if (rc != SQLITE_DONE) return conn->Error("list series");
  return Status::OK();
}

namespace {

// The pids that wrote into series "s" in range "r" and the process filter
// selects ("*legacy": the series carries its pid as a label, stored before
// pid moved out; then "*selected" says whether the filter selects it).
Status SelectedPids(SqliteConnection* conn, const BucketRange& r, int64_t series_id,
                    const Labels& labels, const ProcessFilter& processes, bool* legacy,
                    bool* selected, std::vector<int64_t>* pids) {
  pids->clear();
  *legacy = labels.count(kPidLabel) != 0;
  *selected = !*legacy || processes.Selects(0, labels);
  if (*legacy) return Status::OK();
  SS_PREPARE(st, conn, kSelectPids);
  st.Bind(1, series_id).Bind(2, r.lo).Bind(3, r.hi);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    if (processes.Selects(st.ColumnInt(0), labels)) pids->push_back(st.ColumnInt(0));
  }
  if (rc != SQLITE_DONE) return conn->Error("select pids");
  // A series with no pid in the range is selected only when the filter
  // takes an unknown pid ({pid=""}).
  if (pids->empty()) *selected = processes.Selects(0, labels);
  return Status::OK();
}

}  // namespace

Status SqliteStore::LabelNames(const ProfileQuery& label_query, std::vector<std::string>* out) {
  return LabelNamesOrValues(label_query, nullptr, out);
}

Status SqliteStore::LabelValues(const ProfileQuery& label_query, const std::string& name,
                                std::vector<std::string>* out) {
  return LabelNamesOrValues(label_query, &name, out);
}

Status SqliteStore::LabelNamesOrValues(const ProfileQuery& label_query, const std::string* name,
                                       std::vector<std::string>* out) {
  out->clear();
  ProfileQuery query = label_query;
  std::vector<LabelMatcher> process_matchers;
  TakeProcessMatchers(&query, &process_matchers);
  ProcessFilter processes;
  SS_RETURN_IF_ERROR(ProcessFilter::Create(process_matchers, &processes));
  CompiledMatchers matchers;
  SS_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  ReadLease lease(this);
  SS_RETURN_IF_ERROR(lease.status());
  std::vector<SeriesRow> series;
  SS_RETURN_IF_ERROR(MatchSeries(lease.get(), query, matchers, &series));
  const BucketRange r = RangeOf(query);
  std::set<std::string> found;
  std::vector<int64_t> pids;
  for (const SeriesRow& s : series) {
    bool legacy = false, selected = false;
    SS_RETURN_IF_ERROR(
        SelectedPids(lease.get(), r, s.id, s.labels, processes, &legacy, &selected, &pids));
    if (!selected) continue;
    if (name == nullptr) {
      for (const auto& kv : s.labels) found.insert(kv.first);
      if (!pids.empty()) found.insert(kPidLabel);
    } else {
      auto it = s.labels.find(*name);
      if (it != s.labels.end()) found.insert(it->second);
      if (*name == kPidLabel) {
        for (int64_t pid : pids) found.insert(PidValue(pid));
      }
    }
  }
  out->assign(found.begin(), found.end());
  return Status::OK();
}

int64_t SqliteStore::SizeBytes() {
  int64_t bytes = 0;
  {
    ReadLease lease(this);
    if (!lease.status().ok()) return 0;
    Status s;
    int64_t pages = 0, page_size = 0;
    {
      SqliteStatement st(lease.get()->Prepare("PRAGMA page_count", &s));
      if (s.ok() && st.Step() == SQLITE_ROW) pages = st.ColumnInt(0);
    }
    {
      SqliteStatement st(lease.get()->Prepare("PRAGMA page_size", &s));
      if (s.ok() && st.Step() == SQLITE_ROW) page_size = st.ColumnInt(0);
    }
    bytes = pages * page_size;
  }
  struct stat sb;
  if (stat((path_ + "-wal").c_str(), &sb) == 0) bytes += sb.st_size;
  return bytes;
}

}  // namespace collector
}  // namespace stackstream
