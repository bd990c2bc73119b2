// Metrics: the collector's own health, exposed at /metrics in the Prometheus
// text format. Thread-safe; every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace stackstream {
namespace collector {

class Metrics {
 public:
  void SummaryIngested(int64_t samples, int64_t bytes);
  void SummaryDuplicate();
  void StorageError();  // a Store::Write that failed (the summary was not acknowledged)
  void Rejected(const std::string& reason);  // e.g. "invalid", "too_large", "unauthenticated"
  void AgentConnected();
  void AgentDisconnected();
  void ObserveQuery(const std::string& endpoint, double seconds);

  // Renders every metric; "storage_bytes" is read from the store by the caller.
  std::string RenderPrometheus(int64_t storage_bytes) const;

 private:
  std::atomic<int64_t> summaries_{0}, samples_{0}, bytes_{0}, duplicates_{0}, active_agents_{0},
      storage_errors_{0};
  mutable std::mutex mu_;
  std::map<std::string, int64_t> rejected_;  // GUARDED_BY(mu_)
  struct Histogram {
    std::map<double, int64_t> buckets;  // upper bound -> count in (previous bound, bound]
    double sum = 0;
    int64_t count = 0;
  };
  std::map<std::string, Histogram> query_latency_;  // GUARDED_BY(mu_)
};

}  // namespace collector
}  // namespace stackstream
