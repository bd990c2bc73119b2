// ClickHouseStore: the Store engine for many stateless collectors in front of
// one ClickHouse database (one server, or several shards behind Distributed
// tables). URI:
//
//   clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE[?user=U&password=P&cluster=C]
//
// PORT is the HTTP port (8123). One host: plain MergeTree tables. Several
// hosts and "cluster": each host is a shard named in that remote_servers
// cluster; every host gets "<table>_local" MergeTree tables and "<table>"
// Distributed tables over them (no ZooKeeper: the collector creates the
// tables on each host itself). A summary is inserted into the local tables of
// one shard chosen from its agent_instance_id (hosts sorted, so every
// collector chooses the same shard), so everything about one agent instance
// lives on one shard; queries read the Distributed tables.
//
// Tables (all created when missing; 18.16-compatible types only):
//   summaries  one row per stored write of a summary: identity (agent
//              instance, sequence, write_id), service, series, labels, mode,
//              window, period, drop counters. Partitioned by hour.
//   samples    (bucket, service, series, mode, identity, stack, count) rows.
//              Partitioned by hour.
//   stacks     stack hash -> (truncated, frame hashes), ReplacingMergeTree.
//   frames     frame hash -> frame fields, ReplacingMergeTree.
//
// Exactly once, across collectors and without relying on merges: every
// Write gets a random write_id; it inserts frames, stacks and samples first
// and its summaries row last (the commit mark). Every read counts, for each
// (agent instance, sequence), only the samples of the committed write with
// the smallest write_id. So a summary re-sent to another collector, or two
// collectors racing on the same summary, or an insert retried after a
// timeout, is counted once, whatever merges have or have not run. Write
// reports "duplicate" when a committed row for the identity already exists
// (asked while the batch's rows are inserted: a duplicate's rows are stored
// but get no mark, so they are never counted).
//
// Retention (DeleteBefore): partitions entirely before the cutoff are
// dropped; the one partition the cutoff falls into is trimmed with ALTER
// DELETE (a mutation the store waits for) when it holds rows to delete.
//
// Thread-safe. Concurrent Writes are grouped into one batch of inserts (the
// leader of a batch waits up to a fifth of the last commit's time, at most
// 20 ms, for as many writers as were recently queued at once); one batch is
// committed at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storage/clickhouse_client.h"
#include "storage/group_commit.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

class CompiledMatchers;

class ClickHouseStore : public Store {
 public:
  // "uri" without the "clickhouse://" scheme is not accepted.
  static Status Open(const std::string& uri, std::unique_ptr<ClickHouseStore>* out);
  ~ClickHouseStore() override;

  Status Write(const SummaryRecord& record, bool* duplicate) override;
  Status ListServices(std::vector<ServiceInfo>* out) override;
  Status LabelNames(const ProfileQuery& query, std::vector<std::string>* out) override;
  Status LabelValues(const ProfileQuery& query, const std::string& name,
                     std::vector<std::string>* out) override;
  Status Query(const ProfileQuery& query, Profile* out) override;
  Status Series(const ProfileQuery& query, int64_t step_nanos, const std::string& function,
                std::vector<SeriesPoint>* out) override;
  Status Counters(const ProfileQuery& query, std::map<std::string, int64_t>* out) override;
  Status DeleteBefore(int64_t cutoff_unix_nanos) override;
  int64_t SizeBytes() override;
  Status Health() override;

  // The version string of the first host ("18.16.1").
  const std::string& server_version() const { return version_; }

 private:
  struct Writer;
  struct Node {
    std::unique_ptr<ClickHouseClient> client;
    std::mutex known_mu;
    std::unordered_set<uint64_t> known_frames;  // GUARDED_BY(known_mu): stored on this node
    std::unordered_set<uint64_t> known_stacks;  // GUARDED_BY(known_mu)
  };
  struct SeriesRow {
    uint64_t id = 0;
    Labels labels;
    int64_t period_nanos = 0;
  };
  struct StackRow {
    bool truncated = false;
    std::vector<uint64_t> frames;
  };

  ClickHouseStore() = default;
  Status CreateTables();
  void CommitBatch(const std::vector<Writer*>& batch);
  Status CommitOnNode(Node* node, const std::vector<Writer*>& writers);
  Node* NodeFor(const std::string& agent_instance_id);
  // The table to read ("samples") and the one each node stores into.
  std::string LocalTable(const std::string& table) const;

  // LabelNames (name == nullptr) or LabelValues.
  Status LabelNamesOrValues(const ProfileQuery& query, const std::string* name,
                            std::vector<std::string>* out);
  Status MatchSeries(const ProfileQuery& query, const CompiledMatchers& matchers,
                     std::vector<SeriesRow>* out);
  // WHERE clause over "samples" for the matched series, range and mode, with
  // the exactly-once filter; for an in-use (gauge) type, only each series'
  // latest snapshot in the range.
  // "process_sql": the process matchers' condition on summaries (pid).
  std::string SamplesWhere(const ProfileQuery& query, const std::vector<SeriesRow>& series,
                           const std::string& process_sql);
  // SELECT of (w: write_id, b: bucket) of each process's (series and pid's) latest committed
  // snapshot among the summaries matching "where", per step of "step_nanos"
  // from "origin" (step 0: over the whole range). See SamplesWhere.
  std::string LatestWritesSql(const std::string& where, int64_t origin, int64_t step_nanos);
  std::string SummariesWhere(const ProfileQuery& query, const std::vector<SeriesRow>& series);
  Status LoadStacks(const std::vector<uint64_t>& hashes,
                    std::unordered_map<uint64_t, StackRow>* out);
  Status LoadFrames(const std::vector<uint64_t>& hashes, std::unordered_map<uint64_t, Frame>* out);
  // The frames matching "where" (SQL over frames.hash), into "out" and the cache.
  Status FetchFrames(const std::string& where, std::unordered_map<uint64_t, Frame>* out);
  // The stacks of "hashes" and all their frames, from the caches or the
  // server (a stack's frames asked for together with the stack).
  Status LoadStacksAndFrames(const std::vector<uint64_t>& hashes,
                             std::unordered_map<uint64_t, StackRow>* stacks,
                             std::unordered_map<uint64_t, Frame>* frames);

  std::vector<std::unique_ptr<Node>> nodes_;  // sorted by host:port
  Node* reader_ = nullptr;                    // queries go to the first node
  std::string cluster_;                       // empty: one node
  std::string version_;

  // Batches of up to 256 writes; a leader waits at most 20 ms for more.
  GroupCommit<Writer> group_commit_{256, std::chrono::milliseconds(20)};

  std::mutex cache_mu_;
  std::unordered_map<uint64_t, StackRow> stack_cache_;  // GUARDED_BY(cache_mu_)
  std::unordered_map<uint64_t, Frame> frame_cache_;     // GUARDED_BY(cache_mu_)
};

}  // namespace collector
}  // namespace stackstream
