// ElasticPool: the HTTP server's task queue (cpp-httplib's TaskQueue
// interface). cpp-httplib serves one connection per task and keeps a worker
// for as long as the connection is open (keep-alive waits, slow clients), so a
// fixed pool of N threads is taken down by N idle connections. This pool
// starts a worker whenever a connection arrives and none is idle, up to
// "max_threads" (beyond that, connections wait in a queue), and lets a worker
// go after it was idle for "idle_timeout". Thread-safe.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace stackstream {
namespace collector {

class ElasticPool : public httplib::TaskQueue {
 public:
  ElasticPool(size_t max_threads, std::chrono::milliseconds idle_timeout);
  ~ElasticPool() override;

  void enqueue(std::function<void()> fn) override;
  // Runs the queued tasks, then returns once every worker has exited.
  void shutdown() override;

  size_t threads() const;  // workers alive now

 private:
  void Work();

  const size_t max_threads_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // a task arrived or shutdown
  std::condition_variable exit_cv_;   // a worker exited
  std::deque<std::function<void()>> tasks_;
  size_t threads_ = 0;
  size_t idle_ = 0;
  bool shutdown_ = false;
};

}  // namespace collector
}  // namespace stackstream
