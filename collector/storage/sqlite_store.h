// SqliteStore: the embedded storage engine ("sqlite:PATH"). Schema in
// sqlite_schema.h.
//
// Durability: WAL journal with synchronous=FULL; Write() returns only after
// its transaction committed (WAL fsynced), so an acknowledged summary
// survives SIGKILL and power loss. Concurrent Write() calls are group
// committed (group_commit.h): a batch's leader commits the queued records in
// one transaction, each record in its own savepoint, so one bad record never
// fails its neighbours. Only SQL runs in that serialized section: before a
// record queues, its caller's thread looks its frames and stacks up in the
// ids of committed transactions (in steady state all of them are known) and
// encodes its samples row, in parallel with the batch being committed.
//
// Time: a summary's samples land in the kBucketNanos bucket holding its
// window start. A query [from, to) reads every bucket that overlaps it (bucket
// start in [BucketOf(from), to)); to <= 0 means "no upper bound".
//
// Thread-safety: thread-safe. One writer connection (guarded by a mutex) and
// a pool of reader connections (WAL lets readers run beside the writer).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/group_commit.h"
#include "storage/sqlite_connection.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

class CompiledMatchers;

class SqliteStore : public Store {
 public:
  // Opens or creates the database at "path" (its directory must exist).
  static Status Open(const std::string& path, std::unique_ptr<SqliteStore>* out);
  ~SqliteStore() override;

  Status Write(const SummaryRecord& record, bool* duplicate) override;
  Status ListServices(std::vector<ServiceInfo>* out) override;
  Status LabelNames(const ProfileQuery& query, std::vector<std::string>* out) override;
  Status LabelValues(const ProfileQuery& query, const std::string& name,
                     std::vector<std::string>* out) override;
  Status Query(const ProfileQuery& query, Profile* out) override;
  Status Series(const ProfileQuery& query, int64_t step_nanos, const std::string& function,
                std::vector<SeriesPoint>* out) override;
  Status Counters(const ProfileQuery& query, std::map<std::string, int64_t>* out) override;
  // Deletes the buckets (samples and drop counters) that end at or before
  // "cutoff_unix_nanos", series with no data left and idempotency rows older
  // than the cutoff's bucket.
  // Strings, frames and stacks stay (see sqlite_schema.h).
  Status DeleteBefore(int64_t cutoff_unix_nanos) override;
  int64_t SizeBytes() override;

 private:
  struct Writer;
  // LabelNames (name == nullptr) or LabelValues.
  Status LabelNamesOrValues(const ProfileQuery& query, const std::string* name,
                            std::vector<std::string>* out);
  struct SeriesRow {
    int64_t id = 0;
    Labels labels;
    int64_t period_nanos = 0;
  };
  struct StackRow {
    bool truncated = false;
    std::vector<int64_t> frame_ids;
  };
  class ReadLease;

  explicit SqliteStore(std::string path) : path_(std::move(path)) {}

  // Write path, caller's thread: stack ids of "p"'s samples from the
  // committed ids (0: not known yet); when all are known, also the samples
  // row (Writer::samples_blob, labeled_blob).
  void ResolveKnown(const Profile& p, Writer* w);
  // Write path. REQUIRES: writer_mu_ held.
  void CommitBatch(const std::vector<Writer*>& batch);
  Status WriteOne(Writer* w);
  Status InternString(const std::string& value, int64_t* id);
  Status InternFrame(const Frame& frame, int64_t* id);
  Status InternStack(const std::string& frame_ids, bool truncated, int64_t* id);
  Status UpsertSeries(const SummaryRecord& record, int64_t bucket, int64_t* id);
  void ClearWriteCaches();

  // Read path (any thread, on a leased reader connection).
  Status AcquireReader(std::unique_ptr<SqliteConnection>* out);
  void ReleaseReader(std::unique_ptr<SqliteConnection> conn);
  Status MatchSeries(SqliteConnection* conn, const ProfileQuery& query,
                     const CompiledMatchers& matchers, std::vector<SeriesRow>* out);
  Status LookupModeId(SqliteConnection* conn, const std::string& mode, int64_t* id);
  // String ids of the heap sample types stored so far.
  Status HeapModeIds(SqliteConnection* conn, std::set<int64_t>* out);
  Status LoadStack(SqliteConnection* conn, int64_t id, StackRow* out);
  Status LoadFrame(SqliteConnection* conn, int64_t id, Frame* out);

  const std::string path_;

  // Batches of up to 64 records; a leader waits at most 20 ms for more.
  GroupCommit<Writer> group_commit_{64, std::chrono::milliseconds(20)};

  // The writer connection and its id caches (content -> id); these may
  // hold ids of the open transaction and are cleared when it fails.
  std::mutex writer_mu_;
  std::unique_ptr<SqliteConnection> writer_;                    // GUARDED_BY(writer_mu_)
  std::unordered_map<std::string, int64_t> string_ids_;         // GUARDED_BY(writer_mu_)
  std::unordered_map<Frame, int64_t, FrameHash> new_frame_ids_;  // GUARDED_BY(writer_mu_)
  std::unordered_map<std::string, int64_t> new_stack_ids_;      // GUARDED_BY(writer_mu_)
  std::unordered_map<std::string, int64_t> series_ids_;         // GUARDED_BY(writer_mu_)
  // Frame and stack ids of committed transactions (ids are never reused or
  // deleted): read by any writing thread under a shared lock; the writer
  // adds new_frame_ids_/new_stack_ids_ after each COMMIT under writer_mu_
  // and a unique lock (so the writer reads them without this lock).
  std::shared_mutex committed_mu_;
  std::unordered_map<Frame, int64_t, FrameHash> frame_ids_;     // GUARDED_BY(committed_mu_)
  std::unordered_map<std::string, int64_t> stack_ids_;          // GUARDED_BY(committed_mu_)

  // Reader pool and id -> content caches (ids are never reused).
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_;  // GUARDED_BY(readers_mu_)
  std::mutex cache_mu_;
  std::unordered_map<int64_t, StackRow> stack_cache_;  // GUARDED_BY(cache_mu_)
  std::unordered_map<int64_t, Frame> frame_cache_;     // GUARDED_BY(cache_mu_)
};

}  // namespace collector
}  // namespace stackstream
