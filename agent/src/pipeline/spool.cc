#include "pipeline/spool.h"

#include <utility>

namespace stackstream {
namespace agent {
namespace pipeline {

void Spool::Push(Entry entry) {
  int64_t size = static_cast<int64_t>(entry.request.size());
  while (!entries_.empty() && bytes_ + size > max_bytes_) {
    ++dropped_summaries_;
    ++total_dropped_summaries_;
    dropped_samples_ += entries_.front().samples;
    bytes_ -= static_cast<int64_t>(entries_.front().request.size());
    entries_.pop_front();
  }
  bytes_ += size;
  entries_.push_back(std::move(entry));
}

bool Spool::Ack(uint64_t sequence) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->sequence == sequence) {
      bytes_ -= static_cast<int64_t>(it->request.size());
      entries_.erase(it);
      return true;
    }
    if (it->sequence > sequence) break;  // sequences increase
  }
  return false;
}

bool Spool::PopOldest(Entry* dropped) {
  if (entries_.empty()) return false;
  bytes_ -= static_cast<int64_t>(entries_.front().request.size());
  if (dropped != nullptr) *dropped = std::move(entries_.front());
  entries_.pop_front();
  return true;
}

void Spool::TakeDrops(int64_t* summaries, int64_t* samples) {
  *summaries = dropped_summaries_;
  *samples = dropped_samples_;
  dropped_summaries_ = 0;
  dropped_samples_ = 0;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
