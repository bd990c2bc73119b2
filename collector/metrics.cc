#include "metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace stackstream {
namespace collector {

namespace {

// Upper bounds (seconds) of the query latency histogram (Prometheus defaults
// plus a finer low end: most merged-profile queries take milliseconds).
constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,   0.25,   0.5,   1,    2.5,   5, 10};

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Integral values print as integers ("10", not "1e+01").
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // Otherwise the shortest form that round-trips.
  for (int precision = 1; precision < 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

void Simple(std::string* out, const char* name, const char* type, const char* help,
            int64_t value) {
  Header(out, name, type, help);
  *out += name;
  *out += ' ';
  *out += std::to_string(value);
  *out += '\n';
}

}  // namespace

void Metrics::SummaryIngested(int64_t samples, int64_t bytes) {
  summaries_.fetch_add(1, std::memory_order_relaxed);
  samples_.fetch_add(samples, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

void Metrics::SummaryDuplicate() { duplicates_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::StorageError() { storage_errors_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::Rejected(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[reason];
}

void Metrics::AgentConnected() { active_agents_.fetch_add(1, std::memory_order_relaxed); }

void Metrics::AgentDisconnected() { active_agents_.fetch_sub(1, std::memory_order_relaxed); }

void Metrics::ObserveQuery(const std::string& endpoint, double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN or negative
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = query_latency_[endpoint];
  if (h.buckets.empty()) {
    for (double b : kLatencyBuckets) h.buckets[b] = 0;
  }
  auto it = h.buckets.lower_bound(seconds);  // first bound >= seconds
  if (it != h.buckets.end()) ++it->second;   // beyond the last bound: +Inf only
  h.sum += seconds;
  ++h.count;
}

std::string Metrics::RenderPrometheus(int64_t storage_bytes) const {
  std::string out;
  Simple(&out, "stackstream_summaries_ingested_total", "counter",
         "Stack summaries accepted and stored.", summaries_.load());
  Simple(&out, "stackstream_samples_ingested_total", "counter",
         "Stack samples in the stored summaries.", samples_.load());
  Simple(&out, "stackstream_bytes_received_total", "counter",
         "Serialized (uncompressed) protobuf bytes of the summaries received by ingest; "
         "the bytes on the wire are fewer (gRPC gzip).",
         bytes_.load());
  Simple(&out, "stackstream_summaries_duplicate_total", "counter",
         "Resent summaries recognized as duplicates and not stored again.",
         duplicates_.load());
  int64_t agents = active_agents_.load();
  Simple(&out, "stackstream_active_agents", "gauge", "Agents with an open ingest stream.",
         agents < 0 ? 0 : agents);
  Simple(&out, "stackstream_storage_bytes", "gauge", "Bytes used by the store on disk.",
         storage_bytes);
  Simple(&out, "stackstream_storage_errors_total", "counter",
         "Summaries the store failed to write (not acknowledged; the agent re-sends them).",
         storage_errors_.load());

  std::lock_guard<std::mutex> lock(mu_);
  Header(&out, "stackstream_rejected_total", "counter", "Summaries rejected, by reason.");
  for (const auto& [reason, n] : rejected_) {
    out += "stackstream_rejected_total{reason=\"" + EscapeLabelValue(reason) + "\"} " +
           std::to_string(n) + "\n";
  }
  Header(&out, "stackstream_query_duration_seconds", "histogram",
         "Latency of HTTP query endpoints.");
  for (const auto& [endpoint, h] : query_latency_) {
    const std::string label = "endpoint=\"" + EscapeLabelValue(endpoint) + "\"";
    int64_t cumulative = 0;
    for (const auto& [bound, n] : h.buckets) {
      cumulative += n;
      out += "stackstream_query_duration_seconds_bucket{" + label + ",le=\"" +
             FormatDouble(bound) + "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "stackstream_query_duration_seconds_bucket{" + label + ",le=\"+Inf\"} " +
           std::to_string(h.count) + "\n";
    out += "stackstream_query_duration_seconds_sum{" + label + "} " + FormatDouble(h.sum) +
           "\n";
    out += "stackstream_query_duration_seconds_count{" + label + "} " +
           std::to_string(h.count) + "\n";
  }
  return out;
}

}  // namespace collector
}  // namespace stackstream
