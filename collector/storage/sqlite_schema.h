// SqliteSchema: the tables of the SQLite engine and how to create them.
//
//   strings(id, value)                    every distinct string once
//   frames(id, function_id, file_id, line, module_id, build_id_id, inlined)
//                                         every distinct frame once (string ids)
//   stacks(id, hash, truncated, frame_ids) every distinct stack once; frame_ids
//                                         is a blob of varint frame ids, LEAF
//                                         FIRST; looked up by hash
//   series(id, service, labels, first/last_seen, first/last_bucket, period_nanos)
//                                         one row per (service, label set)
//   samples(id, series_id, bucket_start, mode_id, stack_counts, pid)
//                                         one row per stored summary: the
//                                         (stack id, count) pairs of its bucket
//                                         as a blob of varints (stack ids
//                                         ascending, delta-coded). Indexed by
//                                         (series_id, bucket_start) so a range
//                                         query reads one contiguous run;
//                                         counts are summed in the reader.
//   counters(series_id, bucket_start, mode_id, pid, name_id, value)
//                                         the agents' drop counters (losses are
//                                         data): per (series, bucket, mode, pid,
//                                         counter name string id) the sum over
//                                         the summaries stored there; zero
//                                         counters are not stored. Keyed like
//                                         samples' index so a range query reads
//                                         one contiguous run. Schema version 2.
//   ingested(agent_instance_id, sequence, window_start)
//                                         idempotency: one row per stored summary
//
// One row per summary (not per stack) keeps ingest at one index insert per
// summary. Strings, frames and stacks are not garbage-collected by
// retention: they are bounded by the distinct code seen, not by time.
//
// Ids of strings, frames and stacks are AUTOINCREMENT: never reused, so an id
// always names the same content and readers may cache id -> content forever.
// Thread-safety: pure functions over a connection the caller owns.
#pragma once

#include <cstdint>

#include "format/status.h"
#include "storage/sqlite_connection.h"

namespace stackstream {
namespace collector {

// Width of one time bucket. A summary's samples are stored in the bucket
// holding its window start.
constexpr int64_t kBucketNanos = 10LL * 1000 * 1000 * 1000;

// Schema versions:
//   1  strings, frames, stacks, series, samples, ingested
//   2  + counters (purely additive: a version 1 database is migrated by
//      creating the table; summaries stored before have no counters)
//   3  + labeled_samples (additive): per samples row, its labelled samples
//      (sample_labels.h); rows stored before have none
//   4  + pid columns of samples and counters (process_labels.h): series no
//      longer carry pid; rows stored before have pid 0 (their series' labels
//      carry it); counters are rebuilt with pid in their key
constexpr int64_t kSchemaVersion = 4;

inline int64_t BucketOf(int64_t unix_nanos) {
  int64_t b = unix_nanos / kBucketNanos;
  if (unix_nanos < 0 && b * kBucketNanos != unix_nanos) --b;
  return b * kBucketNanos;
}

// Creates missing tables and indexes and migrates an older database to
// kSchemaVersion (keeping all its data); fails on a database written by a
// newer schema version.
Status CreateSchema(SqliteConnection* conn);

}  // namespace collector
}  // namespace stackstream
