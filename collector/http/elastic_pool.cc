#include "http/elastic_pool.h"

#include <system_error>
#include <thread>

namespace stackstream {
namespace collector {

ElasticPool::ElasticPool(size_t max_threads, std::chrono::milliseconds idle_timeout)
    : max_threads_(max_threads < 1 ? 1 : max_threads), idle_timeout_(idle_timeout) {}

ElasticPool::~ElasticPool() { shutdown(); }

void ElasticPool::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  tasks_.push_back(std::move(fn));
  if (idle_ >= tasks_.size() || threads_ >= max_threads_ || shutdown_) {
    work_cv_.notify_one();
    return;
  }
  ++threads_;
  lock.unlock();
  try {
    std::thread([this] { Work(); }).detach();
  } catch (const std::system_error&) {
    // No thread to be had: the queued task waits for a running worker.
    lock.lock();
    --threads_;
    exit_cv_.notify_all();
  }
}

void ElasticPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (tasks_.empty()) {
      if (shutdown_) break;
      ++idle_;
      const bool woken = work_cv_.wait_for(lock, idle_timeout_,
                                           [this] { return !tasks_.empty() || shutdown_; });
      --idle_;
      if (!woken) break;  // idle for too long
      continue;
    }
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
  --threads_;
  exit_cv_.notify_all();
}

void ElasticPool::shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  shutdown_ = true;
  work_cv_.notify_all();
  // Tasks still queued with no worker left to take them run here.
  while (threads_ == 0 && !tasks_.empty()) {
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
  exit_cv_.wait(lock, [this] { return threads_ == 0; });
}

size_t ElasticPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

}  // namespace collector
}  // namespace stackstream
