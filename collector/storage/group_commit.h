// GroupCommit: the writer queue both storage engines commit through
// (leveldb-style group commit). Each writing thread queues itself and waits;
// the thread at the front leads: it commits up to "max_batch" queued writers
// with one call, marks them done and hands the lead to the next in line, so
// one batch is committed at a time.
//
// A commit costs about the same whatever its size (SQLite: one fsync;
// ClickHouse: a few parts), and each ingest stream has one summary in the
// store at a time, so the streams come back staggered. So a leader first
// waits a little for the writers of the last batches: until as many are
// queued as were recently queued at once (the most over the last one to two
// seconds), or a fifth of the last commit's time has passed (at most
// "max_window"). A lone writer never waits.
//
// Thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace stackstream {
namespace collector {

// Writer: a type with members "bool done" (false) and
// "std::condition_variable cv".
template <typename Writer>
class GroupCommit {
 public:
  using Clock = std::chrono::steady_clock;

  GroupCommit(size_t max_batch, Clock::duration max_window)
      : max_batch_(max_batch), max_window_(max_window) {}

  // Returns once "w" is done: committed by commit(batch) (a callable taking
  // const std::vector<Writer*>&, run with no lock of this class held) on this
  // thread or on the leader's.
  template <typename Commit>
  void Run(Writer* w, Commit&& commit) {
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(w);
    NoteConcurrency(queue_.size());
    // A leader gathering its batch wants to hear of every new writer.
    if (queue_.size() > 1) queue_.front()->cv.notify_one();
    while (!w->done && w != queue_.front()) w->cv.wait(lock);
    if (w->done) return;
    const auto deadline = Clock::now() + window_;
    while (queue_.size() < std::min(concurrency_, max_batch_) &&
           w->cv.wait_until(lock, deadline) != std::cv_status::timeout) {
    }
    std::vector<Writer*> batch;
    for (Writer* q : queue_) {
      batch.push_back(q);
      if (batch.size() >= max_batch_) break;
    }
    lock.unlock();
    const auto t0 = Clock::now();
    commit(static_cast<const std::vector<Writer*>&>(batch));
    const auto took = Clock::now() - t0;
    lock.lock();
    window_ = std::min<Clock::duration>(took / 5, max_window_);
    for (Writer* q : batch) {
      queue_.pop_front();
      q->done = true;
      if (q != w) q->cv.notify_one();
    }
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }

 private:
  // Records "queued" writers waiting at once. REQUIRES: mu_ held.
  void NoteConcurrency(size_t queued) {
    const auto now = Clock::now();
    if (now - peak_since_ > std::chrono::seconds(1)) {
      previous_peak_ = current_peak_;
      current_peak_ = 0;
      peak_since_ = now;
    }
    current_peak_ = std::max(current_peak_, queued);
    concurrency_ = std::max(current_peak_, previous_peak_);
  }

  const size_t max_batch_;
  const Clock::duration max_window_;
  std::mutex mu_;
  std::deque<Writer*> queue_;                       // GUARDED_BY(mu_)
  Clock::duration window_{};                        // GUARDED_BY(mu_)
  size_t concurrency_ = 1;                          // GUARDED_BY(mu_)
  size_t current_peak_ = 0, previous_peak_ = 0;     // GUARDED_BY(mu_)
  Clock::time_point peak_since_;                    // GUARDED_BY(mu_)
};

}  // namespace collector
}  // namespace stackstream
