#include "storage/clickhouse_store.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "storage/label_match.h"
#include "storage/process_labels.h"
#include "storage/sample_labels.h"

namespace stackstream {
namespace collector {

namespace {

constexpr int64_t kBucketNanos = 10LL * 1000 * 1000 * 1000;  // as SqliteStore
constexpr int64_t kPartitionNanos = 3600LL * 1000 * 1000 * 1000;  // one hour
constexpr size_t kMaxCacheEntries = 1 << 20;
constexpr int kMutationWaitSeconds = 120;

#define CH_RETURN_IF_ERROR(expr) \
  do {                           \
    Status _s = (expr);          \
    if (!_s.ok()) return _s;     \
  } while (0)

int64_t BucketOf(int64_t unix_nanos) {
  int64_t b = unix_nanos / kBucketNanos;
  if (unix_nanos < 0 && b * kBucketNanos != unix_nanos) --b;
  return b * kBucketNanos;
}

// FNV-1a, 64 bit: stable across processes and collectors (hashes are keys).
class Fnv {
 public:
  Fnv& Bytes(const std::string& s) {
    U64(s.size());
    for (unsigned char c : s) Byte(c);
    return *this;
  }
  Fnv& U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<unsigned char>(v >> (8 * i)));
    return *this;
  }
  uint64_t value() const { return h_; }

 private:
  void Byte(unsigned char c) {
    h_ ^= c;
    h_ *= 1099511628211ULL;
  }
  uint64_t h_ = 1469598103934665603ULL;
};

uint64_t FrameHash(const Frame& f) {
  return Fnv()
      .Bytes(f.function)
      .Bytes(f.file)
      .U64(static_cast<uint64_t>(f.line))
      .Bytes(f.module)
      .Bytes(f.build_id)
      .U64(f.inlined ? 1 : 0)
      .value();
}

std::string Join(const std::vector<uint64_t>& ids) {
  std::string out;
  for (uint64_t id : ids) {
    if (!out.empty()) out += ",";
    out += std::to_string(id);
  }
  return out;
}

constexpr char kSummariesColumns[] =
    "bucket Int64, agent_instance_id String, sequence UInt64, write_id UInt64, service String, "
    "series UInt64, labels String, mode String, period_nanos Int64, start_nanos Int64, "
    "end_nanos Int64, counter_names Array(String), counter_values Array(Int64), pid Int64";
constexpr char kSamplesColumns[] =
    "bucket Int64, service String, series UInt64, mode String, agent_instance_id String, "
    "sequence UInt64, write_id UInt64, stack UInt64, count Int64";
// The labelled samples of one write (sample_labels.h: stack = stack hash).
constexpr char kLabeledSamplesColumns[] =
    "bucket Int64, service String, series UInt64, mode String, agent_instance_id String, "
    "sequence UInt64, write_id UInt64, entries String";
constexpr char kStacksColumns[] = "hash UInt64, truncated UInt8, frames Array(UInt64)";
constexpr char kFramesColumns[] =
    "hash UInt64, function String, file String, line Int64, module String, build_id String, "
    "inlined UInt8";

struct TableDef {
  const char* name;
  const char* columns;
  const char* engine;  // MergeTree part
};
const TableDef kTables[] = {
    {"summaries", kSummariesColumns,
     "MergeTree PARTITION BY intDiv(bucket, 3600000000000) ORDER BY (agent_instance_id, sequence)"},
    {"samples", kSamplesColumns,
     "MergeTree PARTITION BY intDiv(bucket, 3600000000000) ORDER BY (service, series, bucket, "
     "stack)"},
    {"labeled_samples", kLabeledSamplesColumns,
     "MergeTree PARTITION BY intDiv(bucket, 3600000000000) ORDER BY (service, series, bucket)"},
    {"stacks", kStacksColumns, "ReplacingMergeTree ORDER BY hash"},
    {"frames", kFramesColumns, "ReplacingMergeTree ORDER BY hash"},
};

// Column names of a "name Type, name Type" list.
std::string ColumnNames(const char* columns) {
  std::string out, cur(columns);
  size_t pos = 0;
  while (pos < cur.size()) {
    size_t comma = cur.find(", ", pos);
    std::string def = cur.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!out.empty()) out += ", ";
    out += def.substr(0, def.find(' '));
    if (comma == std::string::npos) break;
    pos = comma + 2;
  }
  return out;
}

// Query range as bucket bounds; "has_lo"/"has_hi" false when unbounded.
struct Range {
  bool has_lo = false, has_hi = false;
  int64_t lo = 0, hi = 0;
};
Range RangeOf(const ProfileQuery& q) {
  Range r;
  if (q.from_unix_nanos > 0) {
    r.has_lo = true;
    r.lo = BucketOf(q.from_unix_nanos);
  }
  if (q.to_unix_nanos > 0) {
    r.has_hi = true;
    r.hi = q.to_unix_nanos;
  }
  return r;
}

// "('alloc_objects', ...)": the heap sample types, for IN.
std::string HeapTypesSql() {
  std::string out;
  for (const char* t : kHeapSampleTypes) out += (out.empty() ? "(" : ", ") + SqlString(t);
  return out + ")";
}

// A query for no mode in particular reads the clock modes only: heap types
// are read when asked for by name (bytes and samples do not add up).
std::string ClockModesSql(const ProfileQuery& q) {
  return q.mode.empty() ? " AND mode NOT IN " + HeapTypesSql() : "";
}

// The process matchers (process_labels.h) over summaries' pid column: a pid
// of 0 is the empty value. (Their regexes were checked by ProcessFilter.)
std::string ProcessSql(const std::vector<LabelMatcher>& matchers) {
  std::string out;
  const std::string value = "if(pid = 0, '', toString(pid))";
  for (const LabelMatcher& m : matchers) {
    switch (m.op) {
      case LabelMatcher::kEq: out += " AND " + value + " = " + SqlString(m.value); break;
      case LabelMatcher::kNotEq: out += " AND " + value + " != " + SqlString(m.value); break;
      case LabelMatcher::kRegex:
        out += " AND match(" + value + ", " + SqlString("^(?:" + m.value + ")$") + ")";
        break;
      case LabelMatcher::kNotRegex:
        out += " AND NOT match(" + value + ", " + SqlString("^(?:" + m.value + ")$") + ")";
        break;
    }
  }
  return out;
}

// Takes the process matchers out of "query" and returns their SQL.
Status TakeProcessSql(ProfileQuery* query, std::string* sql) {
  std::vector<LabelMatcher> process;
  TakeProcessMatchers(query, &process);
  ProcessFilter check;
  Status s = ProcessFilter::Create(process, &check);
  if (!s.ok()) return s;
  *sql = ProcessSql(process);
  return Status::OK();
}

// Copies the cached entries of "hashes" that "*out" lacks into it and
// returns the hashes the cache does not have. REQUIRES: the cache's mutex.
template <typename Value>
std::vector<uint64_t> TakeCached(const std::vector<uint64_t>& hashes,
                                 const std::unordered_map<uint64_t, Value>& cache,
                                 std::unordered_map<uint64_t, Value>* out) {
  std::vector<uint64_t> missing;
  for (uint64_t h : hashes) {
    if (out->count(h)) continue;
    auto it = cache.find(h);
    if (it != cache.end()) {
      (*out)[h] = it->second;
    } else {
      missing.push_back(h);
    }
  }
  return missing;
}

// Corruption when a fetched "what" (stack, frame) did not come back.
template <typename Value>
Status AllFound(const std::vector<uint64_t>& hashes, const std::unordered_map<uint64_t, Value>& got,
                const char* what) {
  for (uint64_t h : hashes) {
    if (!got.count(h)) {
      return Status::Corruption(std::string("clickhouse: ") + what + " " + std::to_string(h) +
                                " missing");
    }
  }
  return Status::OK();
}

std::string RangeSql(const ProfileQuery& q) {
  Range r = RangeOf(q);
  std::string out;
  if (r.has_lo) out += " AND bucket >= " + std::to_string(r.lo);
  if (r.has_hi) out += " AND bucket < " + std::to_string(r.hi);
  return out;
}

}  // namespace

struct ClickHouseStore::Writer {
  const SummaryRecord* record = nullptr;
  bool duplicate = false;
  bool done = false;
  Status status;
  std::condition_variable cv;
};

Status ClickHouseStore::Open(const std::string& uri, std::unique_ptr<ClickHouseStore>* out) {
  const std::string kScheme = "clickhouse://";
  const std::string usage = "expected clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE"
                            "[?user=U&password=P&cluster=C]";
  if (uri.compare(0, kScheme.size(), kScheme) != 0) {
    return Status::InvalidArgument("storage URI \"" + uri + "\": " + usage);
  }
  std::string rest = uri.substr(kScheme.size());
  std::string query;
  size_t qpos = rest.find('?');
  if (qpos != std::string::npos) {
    query = rest.substr(qpos + 1);
    rest = rest.substr(0, qpos);
  }
  size_t slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 >= rest.size()) {
    return Status::InvalidArgument("storage URI \"" + uri + "\" names no database: " + usage);
  }
  std::string hosts = rest.substr(0, slash);
  ClickHouseEndpoint base;
  base.database = rest.substr(slash + 1);
  for (char c : base.database) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return Status::InvalidArgument("storage URI \"" + uri +
                                     "\": database names are letters, digits and '_'");
    }
  }
  std::unique_ptr<ClickHouseStore> store(new ClickHouseStore());
  if (!query.empty()) {
    httplib::Params params;
    httplib::detail::parse_query_text(query, params);
    for (const auto& [k, v] : params) {
      if (k == "user") {
        base.user = v;
      } else if (k == "password") {
        base.password = v;
      } else if (k == "cluster") {
        store->cluster_ = v;
      } else {
        return Status::InvalidArgument("storage URI \"" + uri + "\": unknown parameter \"" + k +
                                       "\"; " + usage);
      }
    }
  }
  for (char c : store->cluster_) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return Status::InvalidArgument("storage URI \"" + uri +
                                     "\": cluster names are letters, digits and '_'");
    }
  }
  std::vector<std::pair<std::string, int>> addrs;
  size_t pos = 0;
  while (pos <= hosts.size()) {
    size_t comma = hosts.find(',', pos);
    std::string hp = hosts.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t colon = hp.rfind(':');
    std::string host = colon == std::string::npos ? hp : hp.substr(0, colon);
    int port = 8123;
    if (colon != std::string::npos) {
      try {
        port = std::stoi(hp.substr(colon + 1));
      } catch (...) {
        port = -1;
      }
    }
    if (host.empty() || port <= 0 || port > 65535) {
      return Status::InvalidArgument("storage URI \"" + uri + "\": bad host \"" + hp + "\"; " +
                                     usage);
    }
    addrs.emplace_back(host, port);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::sort(addrs.begin(), addrs.end());
  if (addrs.size() > 1 && store->cluster_.empty()) {
    return Status::InvalidArgument("storage URI \"" + uri +
                                   "\": several hosts need cluster=NAME (their remote_servers "
                                   "cluster)");
  }
  for (const auto& [host, port] : addrs) {
    ClickHouseEndpoint ep = base;
    ep.host = host;
    ep.port = port;
    auto node = std::make_unique<Node>();
    node->client = std::make_unique<ClickHouseClient>(ep);
    store->nodes_.push_back(std::move(node));
  }
  store->reader_ = store->nodes_.front().get();
  std::string rows;
  Status s = store->reader_->client->Execute("SELECT 1", false);
  if (s.ok()) s = store->reader_->client->Select("SELECT version()", &rows, false);
  if (!s.ok()) return Status::Unavailable("cannot reach ClickHouse: " + s.message());
  RowBinaryReader r(rows);
  r.String(&store->version_);
  CH_RETURN_IF_ERROR(store->CreateTables());
  *out = std::move(store);
  return Status::OK();
}

ClickHouseStore::~ClickHouseStore() = default;

std::string ClickHouseStore::LocalTable(const std::string& table) const {
  return cluster_.empty() ? table : table + "_local";
}

Status ClickHouseStore::CreateTables() {
  for (auto& node : nodes_) {
    ClickHouseClient* c = node->client.get();
    const std::string& db = c->endpoint().database;
    CH_RETURN_IF_ERROR(c->Execute("CREATE DATABASE IF NOT EXISTS " + db, false));
    for (const TableDef& t : kTables) {
      CH_RETURN_IF_ERROR(c->Execute("CREATE TABLE IF NOT EXISTS " + LocalTable(t.name) + " (" +
                                    t.columns + ") ENGINE = " + t.engine));
      if (!cluster_.empty()) {
        CH_RETURN_IF_ERROR(c->Execute("CREATE TABLE IF NOT EXISTS " + std::string(t.name) + " (" +
                                      t.columns + ") ENGINE = Distributed(" + cluster_ + ", " +
                                      db + ", " + LocalTable(t.name) + ", rand())"));
      }
    }
    // Tables made before summaries had their pid column (process_labels.h)
    // get it (18.16 has no ADD COLUMN IF NOT EXISTS).
    for (const std::string& table : {LocalTable("summaries"), std::string("summaries")}) {
      std::string rows;
      CH_RETURN_IF_ERROR(c->Select("SELECT count() FROM system.columns WHERE database = " +
                                       SqlString(db) + " AND table = " + SqlString(table) +
                                       " AND name = 'pid'",
                                   &rows));
      RowBinaryReader rd(rows);
      uint64_t n = 0;
      if (!rd.UInt64(&n)) return Status::Corruption("clickhouse: malformed system.columns row");
      if (n == 0) {
        CH_RETURN_IF_ERROR(c->Execute("ALTER TABLE " + table + " ADD COLUMN pid Int64"));
      }
      if (cluster_.empty()) break;  // one table
    }
  }
  return Status::OK();
}

ClickHouseStore::Node* ClickHouseStore::NodeFor(const std::string& agent_instance_id) {
  if (nodes_.size() == 1) return nodes_.front().get();
  return nodes_[Fnv().Bytes(agent_instance_id).value() % nodes_.size()].get();
}

// ---------------------------------------------------------------- writes

Status ClickHouseStore::Write(const SummaryRecord& record, bool* duplicate) {
  Writer w;
  w.record = &record;
  group_commit_.Run(&w, [this](const std::vector<Writer*>& batch) { CommitBatch(batch); });
  if (duplicate != nullptr) *duplicate = w.duplicate;
  return w.status;
}

void ClickHouseStore::CommitBatch(const std::vector<Writer*>& batch) {
  std::map<Node*, std::vector<Writer*>> by_node;
  for (Writer* w : batch) {
    const SummaryRecord& r = *w->record;
    if (r.service.empty()) {
      w->status = Status::InvalidArgument("record has no service");
      continue;
    }
    if (r.agent_instance_id.empty()) {
      w->status = Status::InvalidArgument("record has no agent_instance_id");
      continue;
    }
    bool bad = false;
    for (const ProfileSample& s : r.profile.samples) {
      for (uint32_t f : s.frames) bad |= f >= r.profile.frames.size();
    }
    if (bad) {
      w->status = Status::InvalidArgument("sample frame index out of range");
      continue;
    }
    by_node[NodeFor(r.agent_instance_id)].push_back(w);
  }
  for (auto& [node, writers] : by_node) {
    Status s = CommitOnNode(node, writers);
    if (!s.ok()) {
      for (Writer* w : writers) {
        w->status = s;
        w->duplicate = false;
      }
    }
  }
}

Status ClickHouseStore::CommitOnNode(Node* node, const std::vector<Writer*>& writers) {
  ClickHouseClient* c = node->client.get();
  // 1. Which identities are committed already (by any collector)? Asked on
  // its own connection while the rows below are built and inserted: only the
  // commit marks depend on the answer (a duplicate's rows, inserted without
  // a mark, are never counted).
  std::string keys;
  for (Writer* w : writers) {
    if (!keys.empty()) keys += ",";
    keys += "(" + SqlString(w->record->agent_instance_id) + "," +
            std::to_string(w->record->sequence) + ")";
  }
  auto f_committed = std::async(std::launch::async, [c, this, keys] {
    std::string rows;
    Status s = c->Select("SELECT DISTINCT agent_instance_id, sequence FROM " +
                             LocalTable("summaries") + " WHERE (agent_instance_id, sequence) IN (" +
                             keys + ")",
                         &rows);
    return std::make_pair(s, std::move(rows));
  });

  // 2. Rows for everything new.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  RowBinaryWriter frames, stacks, samples, labeled_samples;
  std::vector<RowBinaryWriter> marks(writers.size());  // each writer's summaries row
  std::set<std::pair<std::string, uint64_t>> in_batch;
  std::vector<LabeledEntry> labeled;
  std::vector<uint64_t> new_frames, new_stacks;
  std::unordered_set<uint64_t> batch_frames, batch_stacks;
  std::vector<uint64_t> frame_hashes, stack_frames;
  std::unordered_map<uint64_t, int64_t> counts;
  std::unordered_map<uint64_t, std::pair<bool, std::vector<uint64_t>>> stack_defs;
  std::unique_lock<std::mutex> known_lock(node->known_mu);
  for (size_t wi = 0; wi < writers.size(); ++wi) {
    Writer* w = writers[wi];
    const SummaryRecord& r = *w->record;
    if (!in_batch.insert({r.agent_instance_id, r.sequence}).second) {
      w->duplicate = true;  // earlier in this batch
      continue;
    }
    const Profile& p = r.profile;
    const uint64_t write_id = rng();
    const int64_t bucket = BucketOf(p.start_unix_nanos);
    const std::string labels = EncodeLabels(r.labels);
    const uint64_t series = Fnv().Bytes(labels).value();
    frame_hashes.resize(p.frames.size());
    for (size_t i = 0; i < p.frames.size(); ++i) {
      const Frame& f = p.frames[i];
      uint64_t h = frame_hashes[i] = FrameHash(f);
      if (node->known_frames.count(h) || !batch_frames.insert(h).second) continue;
      new_frames.push_back(h);
      frames.UInt64(h);
      frames.String(f.function);
      frames.String(f.file);
      frames.Int64(f.line);
      frames.String(f.module);
      frames.String(f.build_id);
      frames.UInt8(f.inlined ? 1 : 0);
    }
    counts.clear();
    labeled.clear();
    for (const ProfileSample& s : p.samples) {
      if (s.count <= 0) continue;
      Fnv h;
      h.U64(s.truncated ? 1 : 0);
      stack_frames.clear();
      for (uint32_t f : s.frames) {
        stack_frames.push_back(frame_hashes[f]);
        h.U64(frame_hashes[f]);
      }
      const uint64_t sh = h.value();
      counts[sh] += s.count;
      if (!s.labels.empty()) labeled.push_back({sh, s.count, s.labels});
      if (node->known_stacks.count(sh) || !batch_stacks.insert(sh).second) continue;
      new_stacks.push_back(sh);
      stacks.UInt64(sh);
      stacks.UInt8(s.truncated ? 1 : 0);
      stacks.ArraySize(stack_frames.size());
      for (uint64_t fh : stack_frames) stacks.UInt64(fh);
    }
    for (const auto& [sh, n] : counts) {
      samples.Int64(bucket);
      samples.String(r.service);
      samples.UInt64(series);
      samples.String(p.mode);
      samples.String(r.agent_instance_id);
      samples.UInt64(r.sequence);
      samples.UInt64(write_id);
      samples.UInt64(sh);
      samples.Int64(n);
    }
    if (!labeled.empty()) {
      labeled_samples.Int64(bucket);
      labeled_samples.String(r.service);
      labeled_samples.UInt64(series);
      labeled_samples.String(p.mode);
      labeled_samples.String(r.agent_instance_id);
      labeled_samples.UInt64(r.sequence);
      labeled_samples.UInt64(write_id);
      labeled_samples.String(EncodeLabeledEntries(labeled));
    }
    std::vector<std::pair<std::string, int64_t>> counters;
    for (const auto& [name, value] : r.counters) {
      if (!name.empty() && value != 0) counters.emplace_back(name, value);
    }
    RowBinaryWriter& mark = marks[wi];
    mark.Int64(bucket);
    mark.String(r.agent_instance_id);
    mark.UInt64(r.sequence);
    mark.UInt64(write_id);
    mark.String(r.service);
    mark.UInt64(series);
    mark.String(labels);
    mark.String(p.mode);
    mark.Int64(p.period_nanos);
    mark.Int64(p.start_unix_nanos);
    mark.Int64(std::max(p.start_unix_nanos, p.end_unix_nanos));
    mark.ArraySize(counters.size());
    for (const auto& kv : counters) mark.String(kv.first);
    mark.ArraySize(counters.size());
    for (const auto& kv : counters) mark.Int64(kv.second);
    mark.Int64(r.pid);
  }
  known_lock.unlock();

  // 3. Inserts: frames, stacks, samples and labelled samples at once (each
  // on its own connection), the commit marks (summaries) only after all of
  // them are confirmed. Each INSERT is one block, stored atomically; rows of
  // a write whose mark never arrives are never counted.
  auto insert = [c, this](const char* table, const char* columns, const std::string* data) {
    if (data->empty()) return Status::OK();
    return c->Insert(LocalTable(table) + " (" + ColumnNames(columns) + ")", *data);
  };
  auto f_frames =
      std::async(std::launch::async, insert, "frames", kFramesColumns, &frames.data());
  auto f_stacks =
      std::async(std::launch::async, insert, "stacks", kStacksColumns, &stacks.data());
  auto f_labeled = std::async(std::launch::async, insert, "labeled_samples",
                              kLabeledSamplesColumns, &labeled_samples.data());
  Status s_samples = insert("samples", kSamplesColumns, &samples.data());
  Status s_frames = f_frames.get(), s_stacks = f_stacks.get(), s_labeled = f_labeled.get();
  auto [s_committed, committed_rows] = f_committed.get();
  CH_RETURN_IF_ERROR(s_frames);
  CH_RETURN_IF_ERROR(s_stacks);
  {
    std::lock_guard<std::mutex> lock(node->known_mu);
    if (node->known_frames.size() + new_frames.size() > kMaxCacheEntries) {
      node->known_frames.clear();
    }
    if (node->known_stacks.size() + new_stacks.size() > kMaxCacheEntries) {
      node->known_stacks.clear();
    }
    node->known_frames.insert(new_frames.begin(), new_frames.end());
    node->known_stacks.insert(new_stacks.begin(), new_stacks.end());
  }
  CH_RETURN_IF_ERROR(s_samples);
  CH_RETURN_IF_ERROR(s_labeled);
  CH_RETURN_IF_ERROR(s_committed);
  std::set<std::pair<std::string, uint64_t>> committed;
  RowBinaryReader rd(committed_rows);
  while (!rd.AtEnd()) {
    std::pair<std::string, uint64_t> k;
    if (!rd.String(&k.first) || !rd.UInt64(&k.second)) {
      return Status::Corruption("clickhouse: malformed RowBinary result");
    }
    committed.insert(std::move(k));
  }
  std::string summaries;
  for (size_t wi = 0; wi < writers.size(); ++wi) {
    Writer* w = writers[wi];
    if (w->duplicate) continue;
    if (committed.count({w->record->agent_instance_id, w->record->sequence})) {
      w->duplicate = true;  // stored before, by this collector or another
      continue;
    }
    summaries += marks[wi].data();
  }
  return insert("summaries", kSummariesColumns, &summaries);
}

// ---------------------------------------------------------------- retention

Status ClickHouseStore::DeleteBefore(int64_t cutoff_unix_nanos) {
  // A bucket b is deleted when it ends at or before the cutoff: b + B <= cutoff.
  const int64_t limit = cutoff_unix_nanos - kBucketNanos + 1;  // delete bucket < limit
  // Writes go on meanwhile (other collectors' do anyway): nothing here
  // depends on them, and a trimming mutation may take a while.
  for (auto& node : nodes_) {
    ClickHouseClient* c = node->client.get();
    const std::string& db = c->endpoint().database;
    // Commit marks first: samples without their mark are never counted.
    for (const char* name : {"summaries", "samples", "labeled_samples"}) {
      const std::string table = LocalTable(name);
      std::string rows;
      CH_RETURN_IF_ERROR(c->Select("SELECT DISTINCT partition FROM system.parts WHERE database = " +
                                       SqlString(db) + " AND table = " + SqlString(table) +
                                       " AND active",
                                   &rows));
      RowBinaryReader rd(rows);
      std::string part;
      while (rd.String(&part)) {
        int64_t hour;
        try {
          hour = std::stoll(part);
        } catch (...) {
          continue;
        }
        // Whole partition before the cutoff: drop it (no rewrite).
        if (hour >= 0 && (hour + 1) * kPartitionNanos - kBucketNanos < limit) {
          CH_RETURN_IF_ERROR(c->Execute("ALTER TABLE " + table + " DROP PARTITION " + part));
        }
      }
      // The partition the cutoff falls into: trim it when it holds old rows.
      CH_RETURN_IF_ERROR(c->Select("SELECT count() FROM " + table + " WHERE bucket < " +
                                       std::to_string(limit),
                                   &rows));
      RowBinaryReader cr(rows);
      uint64_t n = 0;
      cr.UInt64(&n);
      if (n == 0) continue;
      CH_RETURN_IF_ERROR(
          c->Execute("ALTER TABLE " + table + " DELETE WHERE bucket < " + std::to_string(limit)));
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(kMutationWaitSeconds);
      for (;;) {
        CH_RETURN_IF_ERROR(c->Select("SELECT count() FROM system.mutations WHERE database = " +
                                         SqlString(db) + " AND table = " + SqlString(table) +
                                         " AND is_done = 0",
                                     &rows));
        RowBinaryReader mr(rows);
        uint64_t pending = 0;
        mr.UInt64(&pending);
        if (pending == 0) break;
        if (std::chrono::steady_clock::now() > deadline) {
          return Status::Unavailable("clickhouse: retention mutation on " + table +
                                     " still running after " +
                                     std::to_string(kMutationWaitSeconds) + " s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------- reads

Status ClickHouseStore::MatchSeries(const ProfileQuery& query, const CompiledMatchers& matchers,
                                    std::vector<SeriesRow>* out) {
  out->clear();
  std::string where = "1";
  if (!query.service.empty()) where += " AND service = " + SqlString(query.service);
  where += RangeSql(query);
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT series, any(labels), maxIf(period_nanos, mode NOT IN " + HeapTypesSql() +
          ") FROM summaries WHERE " + where +
          " GROUP BY series ORDER BY series",
      &rows));
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    SeriesRow row;
    std::string labels;
    if (!rd.UInt64(&row.id) || !rd.String(&labels) || !rd.Int64(&row.period_nanos) ||
        !DecodeLabels(labels, &row.labels)) {
      return Status::Corruption("clickhouse: malformed series row");
    }
    if (matchers.Matches(row.labels)) out->push_back(std::move(row));
  }
  return Status::OK();
}

std::string ClickHouseStore::SummariesWhere(const ProfileQuery& query,
                                            const std::vector<SeriesRow>& series) {
  std::string where = "1";
  if (!query.service.empty()) where += " AND service = " + SqlString(query.service);
  std::vector<uint64_t> ids;
  for (const SeriesRow& s : series) ids.push_back(s.id);
  where += " AND series IN (" + Join(ids) + ")";
  where += RangeSql(query);
  if (!query.mode.empty()) where += " AND mode = " + SqlString(query.mode);
  return where;
}

std::string ClickHouseStore::SamplesWhere(const ProfileQuery& query,
                                          const std::vector<SeriesRow>& series,
                                          const std::string& process_sql) {
  const std::string where = SummariesWhere(query, series) + ClockModesSql(query);
  if (IsGaugeSampleType(query.mode)) {
    return where + " AND write_id GLOBAL IN (SELECT w FROM (" +
           LatestWritesSql(where + process_sql, 0, 0) + "))";
  }
  // Exactly once: only the samples of the first committed write of each
  // (agent instance, sequence); of the selected processes, if asked.
  // (write_id is random per write, so it alone names the write.)
  return where + " AND write_id IN (SELECT min(write_id) FROM summaries WHERE " + where +
         process_sql + " GROUP BY agent_instance_id, sequence)";
}

std::string ClickHouseStore::LatestWritesSql(const std::string& where, int64_t origin,
                                             int64_t step_nanos) {
  // Inner: the first committed write of each (agent instance, sequence), as
  // above. Outer: per process (series and pid; and step), the write of the latest window
  // (window start, then sequence), with its bucket. Read through the
  // Distributed tables, for GLOBAL IN: one series may span shards (a
  // restarted agent is a new agent instance), so "latest" is chosen over all
  // of them at once.
  std::string group = "series, wp";
  if (step_nanos > 0) {
    const std::string o = "toInt64(" + std::to_string(origin) + ")";
    group += ", if(wb <= " + o + ", " + o + ", " + o + " + intDiv(wb - " + o + ", " +
             std::to_string(step_nanos) + ") * " + std::to_string(step_nanos) + ")";
  }
  return "SELECT argMax(w1, (ws, sequence)) AS w, argMax(wb, (ws, sequence)) AS b FROM (SELECT "
         "series, sequence, min(write_id) AS w1, any(start_nanos) AS ws, any(bucket) AS wb, "
         "any(pid) AS wp FROM "
         "summaries WHERE " + where + " GROUP BY series, agent_instance_id, sequence) GROUP BY " +
         group;
}

Status ClickHouseStore::LoadStacks(const std::vector<uint64_t>& hashes,
                                   std::unordered_map<uint64_t, StackRow>* out) {
  std::vector<uint64_t> missing;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    missing = TakeCached(hashes, stack_cache_, out);
  }
  if (missing.empty()) return Status::OK();
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT hash, any(truncated), any(frames) FROM stacks WHERE hash IN (" + Join(missing) +
          ") GROUP BY hash",
      &rows));
  RowBinaryReader rd(rows);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (stack_cache_.size() + missing.size() > kMaxCacheEntries) stack_cache_.clear();
  while (!rd.AtEnd()) {
    uint64_t h, n;
    uint8_t truncated;
    StackRow row;
    if (!rd.UInt64(&h) || !rd.UInt8(&truncated) || !rd.ArraySize(&n)) {
      return Status::Corruption("clickhouse: malformed stack row");
    }
    row.truncated = truncated != 0;
    row.frames.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      if (!rd.UInt64(&row.frames[i])) return Status::Corruption("clickhouse: malformed stack row");
    }
    stack_cache_[h] = row;
    (*out)[h] = std::move(row);
  }
  return AllFound(missing, *out, "stack");
}

Status ClickHouseStore::FetchFrames(const std::string& where,
                                    std::unordered_map<uint64_t, Frame>* out) {
  // No GROUP BY: a frame not merged yet may come twice, the same both times
  // (its hash is of its fields).
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT hash, function, file, line, module, build_id, inlined FROM frames WHERE " + where,
      &rows));
  RowBinaryReader rd(rows);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (frame_cache_.size() > kMaxCacheEntries) frame_cache_.clear();
  while (!rd.AtEnd()) {
    uint64_t h;
    uint8_t inlined;
    Frame f;
    if (!rd.UInt64(&h) || !rd.String(&f.function) || !rd.String(&f.file) || !rd.Int64(&f.line) ||
        !rd.String(&f.module) || !rd.String(&f.build_id) || !rd.UInt8(&inlined)) {
      return Status::Corruption("clickhouse: malformed frame row");
    }
    f.inlined = inlined != 0;
    frame_cache_[h] = f;
    (*out)[h] = std::move(f);
  }
  return Status::OK();
}

Status ClickHouseStore::LoadStacksAndFrames(const std::vector<uint64_t>& hashes,
                                            std::unordered_map<uint64_t, StackRow>* stacks,
                                            std::unordered_map<uint64_t, Frame>* frames) {
  // Stacks not cached: their frames are asked for at the same time as they
  // are (one round trip, not two).
  std::vector<uint64_t> uncached;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    for (uint64_t h : hashes) {
      if (!stack_cache_.count(h)) uncached.push_back(h);
    }
  }
  std::future<Status> f_frames;
  std::unordered_map<uint64_t, Frame> fetched;
  if (!uncached.empty()) {
    f_frames = std::async(std::launch::async, [this, &uncached, &fetched] {
      return FetchFrames("hash IN (SELECT arrayJoin(frames) FROM stacks WHERE hash IN (" +
                             Join(uncached) + "))",
                         &fetched);
    });
  }
  Status s = LoadStacks(hashes, stacks);
  if (f_frames.valid()) {
    Status fs = f_frames.get();
    if (s.ok()) s = fs;
  }
  CH_RETURN_IF_ERROR(s);
  frames->insert(fetched.begin(), fetched.end());
  std::vector<uint64_t> frame_hashes;
  for (const auto& kv : *stacks) {
    for (uint64_t fh : kv.second.frames) {
      if (!frames->count(fh)) frame_hashes.push_back(fh);
    }
  }
  std::sort(frame_hashes.begin(), frame_hashes.end());
  frame_hashes.erase(std::unique(frame_hashes.begin(), frame_hashes.end()), frame_hashes.end());
  return LoadFrames(frame_hashes, frames);
}

Status ClickHouseStore::LoadFrames(const std::vector<uint64_t>& hashes,
                                   std::unordered_map<uint64_t, Frame>* out) {
  std::vector<uint64_t> missing;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    missing = TakeCached(hashes, frame_cache_, out);
  }
  if (missing.empty()) return Status::OK();
  CH_RETURN_IF_ERROR(FetchFrames("hash IN (" + Join(missing) + ")", out));
  return AllFound(missing, *out, "frame");
}

Status ClickHouseStore::Query(const ProfileQuery& sample_query, Profile* out) {
  *out = Profile();
  ProfileQuery query = sample_query;
  std::vector<LabelMatcher> sample_matchers;
  TakeSampleMatchers(&query, &sample_matchers);
  std::string process_sql;
  CH_RETURN_IF_ERROR(TakeProcessSql(&query, &process_sql));
  LabeledCounts labeled;
  CH_RETURN_IF_ERROR(LabeledCounts::Create(sample_matchers, &labeled));
  CompiledMatchers matchers;
  CH_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  std::vector<SeriesRow> series;
  CH_RETURN_IF_ERROR(MatchSeries(query, matchers, &series));
  ProfileBuilder builder;
  Profile* p = builder.mutable_profile();
  if (!query.mode.empty()) p->mode = query.mode;
  if (series.empty()) {
    *out = builder.Release();
    return Status::OK();
  }
  // The labelled samples (sample_labels.h) are asked for at the same time.
  const std::string where = SamplesWhere(query, series, process_sql);
  std::string labeled_rows;
  auto f_labeled = std::async(std::launch::async, [this, &where, &labeled_rows] {
    return reader_->client->Select("SELECT entries FROM labeled_samples WHERE " + where,
                                   &labeled_rows);
  });
  std::string rows;
  Status s_samples = reader_->client->Select(
      "SELECT mode, stack, sum(count), min(bucket), max(bucket) FROM samples WHERE " + where +
          " GROUP BY mode, stack",
      &rows);
  Status s_labeled = f_labeled.get();
  CH_RETURN_IF_ERROR(s_samples);
  CH_RETURN_IF_ERROR(s_labeled);
  std::map<uint64_t, int64_t> counts;
  std::map<std::string, int64_t> mode_counts;
  int64_t min_bucket = std::numeric_limits<int64_t>::max();
  int64_t max_bucket = std::numeric_limits<int64_t>::min();
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    std::string mode;
    uint64_t stack;
    int64_t n, lo, hi;
    if (!rd.String(&mode) || !rd.UInt64(&stack) || !rd.Int64(&n) || !rd.Int64(&lo) ||
        !rd.Int64(&hi)) {
      return Status::Corruption("clickhouse: malformed sample row");
    }
    counts[stack] += n;
    mode_counts[mode] += n;
    min_bucket = std::min(min_bucket, lo);
    max_bucket = std::max(max_bucket, hi);
  }
  if (!mode_counts.empty()) {
    if (query.mode.empty()) {
      p->mode = std::max_element(mode_counts.begin(), mode_counts.end(), [](const auto& a,
                                                                            const auto& b) {
                  return a.second < b.second;
                })->first;
    }
    p->start_unix_nanos = min_bucket;
    p->end_unix_nanos = max_bucket + kBucketNanos;
    p->period_nanos = series.front().period_nanos;
  }
  if (IsHeapSampleType(query.mode)) p->period_nanos = 1;  // amounts (store.h)
  std::vector<uint64_t> hashes;
  for (const auto& kv : counts) hashes.push_back(kv.first);
  std::unordered_map<uint64_t, StackRow> stacks;
  std::unordered_map<uint64_t, Frame> frames;
  CH_RETURN_IF_ERROR(LoadStacksAndFrames(hashes, &stacks, &frames));
  // Split by sample labels (sample_labels.h).
  for (const auto& [hash, n] : counts) labeled.AddStack(hash, n);
  RowBinaryReader entries(labeled_rows);
  while (!entries.AtEnd()) {
    std::string blob;
    if (!entries.String(&blob) || !labeled.AddLabeled(blob)) {
      return Status::Corruption("clickhouse: malformed labeled_samples row");
    }
  }
  std::unordered_map<uint64_t, uint32_t> frame_index;
  std::vector<uint32_t> indexes;
  CH_RETURN_IF_ERROR(labeled.ForEach([&](uint64_t hash, int64_t n, const SampleLabels& labels) {
    const StackRow& row = stacks[hash];
    indexes.clear();
    for (uint64_t fh : row.frames) {
      auto it = frame_index.find(fh);
      if (it == frame_index.end()) it = frame_index.emplace(fh, builder.InternFrame(frames[fh])).first;
      indexes.push_back(it->second);
    }
    builder.AddSample(indexes, n, row.truncated, labels);
    return Status::OK();
  }));
  *out = builder.Release();
  return Status::OK();
}

Status ClickHouseStore::Series(const ProfileQuery& sample_query, int64_t step_nanos,
                               const std::string& function, std::vector<SeriesPoint>* out) {
  out->clear();
  if (step_nanos <= 0) return Status::InvalidArgument("step must be positive");
  // Matchers on sample labels (sample_labels.h) count only the samples they select.
  ProfileQuery query = sample_query;
  std::vector<LabelMatcher> sample_matchers;
  TakeSampleMatchers(&query, &sample_matchers);
  std::string process_sql;
  CH_RETURN_IF_ERROR(TakeProcessSql(&query, &process_sql));
  LabeledCounts sample_filter;
  CH_RETURN_IF_ERROR(LabeledCounts::Create(sample_matchers, &sample_filter));
  CompiledMatchers matchers;
  CH_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  std::vector<SeriesRow> series;
  CH_RETURN_IF_ERROR(MatchSeries(query, matchers, &series));
  if (series.empty()) return Status::OK();
  const bool by_stack = !function.empty() || !sample_matchers.empty();
  const std::string stack_col = by_stack ? "stack" : "toUInt64(0)";
  const int64_t origin = query.from_unix_nanos > 0 ? query.from_unix_nanos : 0;
  std::string sql = "SELECT bucket, " + stack_col + " AS s, sum(count) FROM samples WHERE " +
                    SamplesWhere(query, series, process_sql) + " GROUP BY bucket, s";
  if (IsGaugeSampleType(query.mode)) {
    // Each process's latest snapshot per step. The second part adds a zero for
    // every snapshot chosen, so a step whose snapshots are all empty (nothing
    // live) is a point of 0, not a gap. (Constants are materialized: 18.16
    // cannot merge a column constant in one part and not in another.)
    const std::string where = SummariesWhere(query, series) + ClockModesSql(query);
    const std::string latest = LatestWritesSql(where + process_sql, origin, step_nanos);
    sql = "SELECT b, s, sum(n) FROM (SELECT bucket AS b, " +
          (by_stack ? stack_col : "materialize(toUInt64(0))") +
          " AS s, count AS n FROM samples WHERE " + where +
          " AND write_id GLOBAL IN (SELECT w FROM (" + latest +
          ")) UNION ALL SELECT b, materialize(toUInt64(0)) AS s, materialize(toInt64(0)) AS n "
          "FROM (" + latest + ")) GROUP BY b, s";
  }
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(sql, &rows));
  struct Row {
    int64_t bucket;
    uint64_t stack;
    int64_t n;
  };
  auto step_of = [&](int64_t bucket) {
    if (bucket <= origin) return origin;
    return origin + (bucket - origin) / step_nanos * step_nanos;
  };
  std::vector<Row> data;
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    Row r;
    if (!rd.Int64(&r.bucket) || !rd.UInt64(&r.stack) || !rd.Int64(&r.n)) {
      return Status::Corruption("clickhouse: malformed series row");
    }
    data.push_back(r);
  }
  if (!sample_matchers.empty()) {
    // Per step: the stacks' counts split by their labelled samples, and only
    // what the matchers select kept (heap snapshots carry no labels).
    std::map<int64_t, LabeledCounts> steps;
    auto step_counts = [&](int64_t bucket) -> LabeledCounts& {
      return steps.emplace(step_of(bucket), sample_filter).first->second;
    };
    for (const Row& r : data) step_counts(r.bucket).AddStack(r.stack, r.n);
    if (!IsGaugeSampleType(query.mode)) {
      CH_RETURN_IF_ERROR(reader_->client->Select(
          "SELECT bucket, entries FROM labeled_samples WHERE " +
              SamplesWhere(query, series, process_sql),
          &rows));
      RowBinaryReader entries(rows);
      while (!entries.AtEnd()) {
        int64_t bucket;
        std::string blob;
        if (!entries.Int64(&bucket) || !entries.String(&blob) ||
            !step_counts(bucket).AddLabeled(blob)) {
          return Status::Corruption("clickhouse: malformed labeled_samples row");
        }
      }
    }
    data.clear();
    for (const auto& [step, counts] : steps) {
      const int64_t t = step;  // (a structured binding cannot be captured in C++17)
      CH_RETURN_IF_ERROR(counts.ForEach([&](uint64_t stack, int64_t n, const SampleLabels&) {
        data.push_back(Row{t, stack, n});
        return Status::OK();
      }));
    }
  }
  std::set<uint64_t> stack_set;
  for (const Row& r : data) {
    if (r.n != 0) stack_set.insert(r.stack);  // 0: a gauge's empty snapshot
  }
  std::unordered_map<uint64_t, bool> has_function;
  if (!function.empty()) {
    std::unordered_map<uint64_t, StackRow> stacks;
    std::unordered_map<uint64_t, Frame> frames;
    CH_RETURN_IF_ERROR(LoadStacksAndFrames(
        std::vector<uint64_t>(stack_set.begin(), stack_set.end()), &stacks, &frames));
    for (const auto& [h, row] : stacks) {
      bool found = false;
      for (uint64_t fh : row.frames) found |= frames[fh].function == function;
      has_function[h] = found;
    }
  }
  std::map<int64_t, SeriesPoint> points;
  for (const Row& r : data) {
    int64_t t = step_of(r.bucket);
    SeriesPoint& pt = points[t];
    pt.unix_nanos = t;
    pt.total += r.n;
    if (!function.empty() && r.n != 0 && has_function[r.stack]) pt.matched += r.n;
  }
  for (auto& kv : points) {
    // Steps where the sample matchers selected nothing have no data.
    if (!sample_matchers.empty() && kv.second.total == 0) continue;
    out->push_back(kv.second);
  }
  return Status::OK();
}

Status ClickHouseStore::Counters(const ProfileQuery& counters_query,
                                 std::map<std::string, int64_t>* out) {
  out->clear();
  ProfileQuery query = counters_query;
  std::string process_sql;
  CH_RETURN_IF_ERROR(TakeProcessSql(&query, &process_sql));
  CompiledMatchers matchers;
  CH_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  std::vector<SeriesRow> series;
  CH_RETURN_IF_ERROR(MatchSeries(query, matchers, &series));
  if (series.empty()) return Status::OK();
  std::string rows;
  // One row per (agent instance, sequence): the first committed write's.
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT name, sum(value) FROM (SELECT argMin(counter_names, write_id) AS n, "
      "argMin(counter_values, write_id) AS v FROM summaries WHERE " +
          SummariesWhere(query, series) + process_sql +
          " GROUP BY agent_instance_id, sequence) ARRAY JOIN n AS name, v AS value GROUP BY name",
      &rows));
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    std::string name;
    int64_t total;
    if (!rd.String(&name) || !rd.Int64(&total)) {
      return Status::Corruption("clickhouse: malformed counter row");
    }
    if (total != 0) (*out)[name] = total;
  }
  return Status::OK();
}

Status ClickHouseStore::ListServices(std::vector<ServiceInfo>* out) {
  out->clear();
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT service, series, any(labels), min(start_nanos), max(end_nanos) FROM summaries "
      "GROUP BY service, series ORDER BY service, series",
      &rows));
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    std::string service, encoded;
    uint64_t series;
    int64_t first, last;
    Labels labels;
    if (!rd.String(&service) || !rd.UInt64(&series) || !rd.String(&encoded) ||
        !rd.Int64(&first) || !rd.Int64(&last) || !DecodeLabels(encoded, &labels)) {
      return Status::Corruption("clickhouse: malformed service row");
    }
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
  return Status::OK();
}

Status ClickHouseStore::LabelNames(const ProfileQuery& query, std::vector<std::string>* out) {
  return LabelNamesOrValues(query, nullptr, out);
}

Status ClickHouseStore::LabelValues(const ProfileQuery& query, const std::string& name,
                                    std::vector<std::string>* out) {
  return LabelNamesOrValues(query, &name, out);
}

Status ClickHouseStore::LabelNamesOrValues(const ProfileQuery& label_query,
                                           const std::string* name,
                                           std::vector<std::string>* out) {
  out->clear();
  ProfileQuery query = label_query;
  std::string process_sql;
  CH_RETURN_IF_ERROR(TakeProcessSql(&query, &process_sql));
  CompiledMatchers matchers;
  CH_RETURN_IF_ERROR(CompiledMatchers::Compile(query.matchers, &matchers));
  std::vector<SeriesRow> series;
  CH_RETURN_IF_ERROR(MatchSeries(query, matchers, &series));
  if (series.empty()) return Status::OK();
  // The selected series' processes: (series, pid) pairs, pid 0 included
  // (a write of no known process).
  std::string rows;
  CH_RETURN_IF_ERROR(reader_->client->Select(
      "SELECT DISTINCT series, pid FROM summaries WHERE " + SummariesWhere(query, series) +
          process_sql,
      &rows));
  std::map<uint64_t, std::vector<int64_t>> pids;
  RowBinaryReader rd(rows);
  while (!rd.AtEnd()) {
    uint64_t id;
    int64_t pid;
    if (!rd.UInt64(&id) || !rd.Int64(&pid)) return Status::Corruption("clickhouse: malformed pid row");
    pids[id].push_back(pid);
  }
  std::set<std::string> found;
  for (const SeriesRow& s : series) {
    auto p = pids.find(s.id);
    if (p == pids.end()) continue;  // no write of a selected process
    bool any_pid = false;
    for (int64_t pid : p->second) any_pid |= pid != 0;
    if (name == nullptr) {
      for (const auto& kv : s.labels) found.insert(kv.first);
      if (any_pid) found.insert(kPidLabel);
    } else {
      auto it = s.labels.find(*name);
      if (it != s.labels.end()) found.insert(it->second);
      if (*name == kPidLabel) {
        for (int64_t pid : p->second) {
          if (pid != 0) found.insert(PidValue(pid));
        }
      }
    }
  }
  out->assign(found.begin(), found.end());
  return Status::OK();
}

int64_t ClickHouseStore::SizeBytes() {
  int64_t total = 0;
  for (auto& node : nodes_) {
    std::string rows;
    Status s = node->client->Select(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = " +
            SqlString(node->client->endpoint().database) + " AND active",
        &rows);
    if (!s.ok()) return 0;
    RowBinaryReader rd(rows);
    uint64_t n = 0;
    rd.UInt64(&n);
    total += static_cast<int64_t>(n);
  }
  return total;
}

Status ClickHouseStore::Health() {
  for (auto& node : nodes_) {
    Status s = node->client->Execute("SELECT 1");
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace collector
}  // namespace stackstream
