// Spool: the summaries sent (or to be sent) to the collector and not yet
// acknowledged, oldest first, bounded by their serialized size. When a new
// summary does not fit, the oldest are dropped and counted (the counts travel
// to the collector in the next summary).
//
// Not thread-safe: the Sender guards it with its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

namespace stackstream {
namespace agent {
namespace pipeline {

class Spool {
 public:
  struct Entry {
    uint64_t sequence = 0;
    std::string request;  // serialized v1::IngestRequest
    int64_t samples = 0;  // samples inside (for the drop counters)
  };

  explicit Spool(int64_t max_bytes) : max_bytes_(max_bytes) {}

  // Appends "entry", first dropping the oldest entries until it fits. An
  // entry larger than the whole budget is kept alone.
  void Push(Entry entry);
  // Removes the entry with "sequence". Returns false if there is none.
  bool Ack(uint64_t sequence);
  // Removes the oldest entry (e.g. rejected by the collector). Returns false
  // when empty; "*dropped" receives it.
  bool PopOldest(Entry* dropped);

  const std::deque<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  int64_t bytes() const { return bytes_; }

  // Drops since the last call (and resets them).
  void TakeDrops(int64_t* summaries, int64_t* samples);
  int64_t total_dropped_summaries() const { return total_dropped_summaries_; }

 private:
  int64_t max_bytes_;
  int64_t bytes_ = 0;
  std::deque<Entry> entries_;
  int64_t dropped_summaries_ = 0;
  int64_t dropped_samples_ = 0;
  int64_t total_dropped_summaries_ = 0;
};

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
