#include "http/api_handlers.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "export/diff.h"
#include "export/flamegraph.h"
#include "export/folded.h"
#include "export/max_nodes.h"
#include "export/speedscope.h"
#include "export/top.h"
#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "http/query_params.h"
#include "http/selector.h"
#include "http/time_parse.h"
#include "stackstream/v1/summary.pb.h"

namespace stackstream {
namespace collector {

namespace {

using nlohmann::json;

constexpr int64_t kNanos = 1000000000;
constexpr int64_t kDefaultTopLimit = 100;
constexpr int64_t kMaxLimit = 1000000;
constexpr int64_t kMaxSeriesPoints = 11000;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

HttpReply JsonReply(const json& j) {
  HttpReply reply;
  reply.body = Dump(j);
  return reply;
}

// A file name safe inside a Content-Disposition header.
std::string SafeFileName(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 100)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? "profile" : out;
}

json RowJson(const exporter::TopRow& r) {
  return json{{"function", r.function}, {"module", r.module},       {"file", r.file},
              {"line", r.line},         {"self", r.self},         {"total", r.total},
              {"self_pct", r.self_pct}, {"total_pct", r.total_pct}};
}

json RangeJson(const ProfileQuery& q, int64_t total) {
  return json{{"service", q.service},
              {"selector", FormatSelector(q.matchers)},
              {"from", FormatRfc3339(q.from_unix_nanos)},
              {"to", FormatRfc3339(q.to_unix_nanos)},
              {"total", total}};
}

// The agent's drop counters that count lost samples (the others count
// events: unwind failures, truncated stacks, failed timers, ...). A stack over
// the per-summary limit is counted once per dropped stack, a lower bound of
// its samples.
constexpr const char* kDroppedSampleCounters[] = {
    "samples_dropped_ring_full", "samples_dropped_spool_full", "stacks_dropped_limit",
    "samples_lost_agent_restart"};

int64_t DroppedSamples(const std::map<std::string, int64_t>& counters) {
  int64_t total = 0;
  for (const char* name : kDroppedSampleCounters) {
    auto it = counters.find(name);
    if (it != counters.end()) total += it->second;
  }
  return total;
}

// type=heap names the four heap types together: only a pprof file holds
// several sample types.
Status OnlyOneType(const ProfileQuery& query) {
  if (query.mode != "heap") return Status::OK();
  return ParamError("type", "heap (the four heap types together) is only for format=pprof; "
                            "pick one of alloc_objects, alloc_space, inuse_objects, inuse_space");
}

}  // namespace

HttpReply ApiHandlers::Services(const QueryParams& params) {
  std::vector<ServiceInfo> services;
  Status s = store_->ListServices(&services);
  if (!s.ok()) return StatusReply(s);
  std::sort(services.begin(), services.end(),
            [](const ServiceInfo& a, const ServiceInfo& b) { return a.service < b.service; });
  json out = json::array();
  for (const ServiceInfo& info : services) {
    json sets = json::array();
    for (const Labels& labels : info.label_sets) sets.push_back(json(labels));
    out.push_back(json{{"service", info.service},
                       {"label_sets", std::move(sets)},
                       {"first_seen", FormatRfc3339(info.first_seen_unix_nanos)},
                       {"last_seen", FormatRfc3339(info.last_seen_unix_nanos)},
                       {"first_seen_unix_nanos", info.first_seen_unix_nanos},
                       {"last_seen_unix_nanos", info.last_seen_unix_nanos}});
  }
  return JsonReply(out);
}

HttpReply ApiHandlers::Profile(const QueryParams& params, int64_t now_unix_nanos) {
  std::string format;
  GetParam(params, "format", &format);
  if (format.empty()) format = "pprof";
  if (format != "pprof" && format != "folded" && format != "speedscope" &&
      format != "flamegraph") {
    return StatusReply(ParamError("format", "\"" + format.substr(0, 64) +
                                                "\" is not one of pprof, folded, speedscope, "
                                                "flamegraph"));
  }
  // max_nodes=N: Pyroscope's truncation (the N largest call-tree nodes, the
  // rest merged into "other") for the flame-graph-like formats.
  int64_t max_nodes = 0;
  Status s = ParseIntParam(params, "max_nodes", 1, kMaxLimit, &max_nodes);
  if (!s.ok()) return StatusReply(s);
  if (max_nodes > 0 && format == "pprof") {
    return StatusReply(ParamError("max_nodes", "applies to flamegraph, speedscope and folded"));
  }
  ProfileQuery query;
  s = ParseProfileQuery(params, now_unix_nanos, QueryParamNames(), &query);
  if (!s.ok()) return StatusReply(s);
  if (query.mode == "heap") {
    if (format != "pprof") return StatusReply(OnlyOneType(query));
    return HeapPprof(query);
  }
  stackstream::Profile profile;
  std::map<std::string, int64_t> counters;
  s = ReadProfile(query, &profile, &counters);
  if (!s.ok()) return StatusReply(s);
  if (max_nodes > 0) profile = exporter::TruncateToMaxNodes(profile, max_nodes);
  if (profile.start_unix_nanos == 0) profile.start_unix_nanos = query.from_unix_nanos;
  if (profile.end_unix_nanos == 0) profile.end_unix_nanos = query.to_unix_nanos;

  HttpReply reply;
  // Losses are data: every format says how many samples the agents lost.
  reply.headers.emplace_back("X-Stackstream-Dropped-Samples",
                             std::to_string(DroppedSamples(counters)));
  const std::string base_name = SafeFileName(query.service + "." + profile.mode);
  if (format == "pprof") {
    profile.comments = CounterComments(counters);
    reply.content_type = "application/octet-stream";
    reply.body = EncodePprofGzip(profile);
    reply.headers.emplace_back("Content-Disposition",
                               "attachment; filename=\"" + base_name + ".pb.gz\"");
  } else if (format == "folded") {
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = exporter::ExportFolded(profile);
  } else if (format == "speedscope") {
    reply.body = exporter::ExportSpeedscope(profile, query.service + " " + profile.mode);
    reply.headers.emplace_back("Content-Disposition",
                               "attachment; filename=\"" + base_name + ".speedscope.json\"");
  } else {
    if (IsHeapSampleType(profile.mode)) {
      const bool bytes = std::string(SampleTypeUnit(profile.mode)) == "bytes";
      reply.body = exporter::FlameGraphFrameJson(exporter::FlameGraphRows(profile), 1,
                                                 bytes ? "bytes" : "short");
    } else {
      const int64_t period = profile.period_nanos > 0 ? profile.period_nanos : 1;
      reply.body = exporter::FlameGraphFrameJson(exporter::FlameGraphRows(profile), period, "ns");
    }
  }
  return reply;
}

HttpReply ApiHandlers::HeapPprof(const ProfileQuery& query) {
  stackstream::Profile by_type[4];
  std::map<std::string, int64_t> counters;
  for (int t = 0; t < 4; ++t) {
    ProfileQuery q = query;
    q.mode = kHeapSampleTypes[t];
    Status s = store_->Query(q, &by_type[t]);
    if (!s.ok()) return StatusReply(s);
    if (t == 0) {
      s = store_->Counters(q, &counters);
      if (!s.ok()) return StatusReply(s);
    }
  }
  by_type[0].comments = CounterComments(counters);
  const stackstream::Profile* parts[4] = {&by_type[0], &by_type[1], &by_type[2], &by_type[3]};
  HttpReply reply;
  reply.content_type = "application/octet-stream";
  reply.body = EncodeHeapPprofGzip(parts);
  reply.headers.emplace_back("Content-Disposition",
                             "attachment; filename=\"" + SafeFileName(query.service + ".heap") +
                                 ".pb.gz\"");
  return reply;
}

Status ApiHandlers::ReadProfile(const ProfileQuery& query, stackstream::Profile* profile,
                                std::map<std::string, int64_t>* counters) {
  Status s = store_->Query(query, profile);
  if (!s.ok()) return s;
  return store_->Counters(query, counters);
}

HttpReply ApiHandlers::Top(const QueryParams& params, int64_t now_unix_nanos) {
  int64_t limit = kDefaultTopLimit;
  Status s = ParseIntParam(params, "limit", 1, kMaxLimit, &limit);
  if (!s.ok()) return StatusReply(s);
  ProfileQuery query;
  s = ParseProfileQuery(params, now_unix_nanos, QueryParamNames(), &query);
  if (!s.ok()) return StatusReply(s);
  if (!(s = OnlyOneType(query)).ok()) return StatusReply(s);
  stackstream::Profile profile;
  std::map<std::string, int64_t> counters;
  s = ReadProfile(query, &profile, &counters);
  if (!s.ok()) return StatusReply(s);
  json rows = json::array();
  for (const exporter::TopRow& r : exporter::Top(profile, static_cast<size_t>(limit))) {
    rows.push_back(RowJson(r));
  }
  HttpReply reply = JsonReply(rows);
  // Metadata for clients that want it without changing the row list.
  reply.headers.emplace_back("X-Stackstream-Total-Samples", std::to_string(profile.TotalCount()));
  reply.headers.emplace_back("X-Stackstream-Period-Nanos", std::to_string(profile.period_nanos));
  reply.headers.emplace_back("X-Stackstream-Dropped-Samples",
                             std::to_string(DroppedSamples(counters)));
  return reply;
}

HttpReply ApiHandlers::Counters(const QueryParams& params, int64_t now_unix_nanos) {
  ProfileQuery query;
  Status s = ParseProfileQuery(params, now_unix_nanos, QueryParamNames(), &query);
  if (!s.ok()) return StatusReply(s);
  if (!(s = OnlyOneType(query)).ok()) return StatusReply(s);
  std::map<std::string, int64_t> counters;
  s = store_->Counters(query, &counters);
  if (!s.ok()) return StatusReply(s);
  // Samples stored in the same range: one point over the whole range.
  std::vector<SeriesPoint> points;
  s = store_->Series(query, std::numeric_limits<int64_t>::max(), "", &points);
  if (!s.ok()) return StatusReply(s);
  int64_t samples = 0;
  for (const SeriesPoint& p : points) samples += p.total;

  // Every counter the agent defines, 0 when nothing was lost, so clients
  // and dashboards see stable keys; then any other name a store holds.
  json out = json::object();
  const google::protobuf::Descriptor* d = v1::Counters::descriptor();
  for (int i = 0; i < d->field_count(); ++i) out[d->field(i)->name()] = 0;
  for (const auto& [name, value] : counters) out[name] = value;
  out["samples"] = samples;
  return JsonReply(out);
}

HttpReply ApiHandlers::Diff(const QueryParams& params, int64_t now_unix_nanos) {
  int64_t limit = kDefaultTopLimit;
  Status s = ParseIntParam(params, "limit", 1, kMaxLimit, &limit);
  if (!s.ok()) return StatusReply(s);
  ProfileQuery target;
  s = ParseProfileQuery(params, now_unix_nanos, QueryParamNames(), &target);
  if (!s.ok()) return StatusReply(s);
  if (!(s = OnlyOneType(target)).ok()) return StatusReply(s);

  std::string base_from, base_to, base_selector;
  const bool has_from = GetParam(params, "base_from", &base_from);
  const bool has_to = GetParam(params, "base_to", &base_to);
  const bool has_selector = GetParam(params, "base_selector", &base_selector);
  if (!has_from && !has_to && !has_selector) {
    return StatusReply(ParamError(
        "base_from", "missing (give base_from/base_to for a time range, or base_selector)"));
  }
  ProfileQuery base = target;
  if (has_selector) {
    s = ParseSelector(base_selector, &base.matchers);
    if (!s.ok()) return StatusReply(ParamError("base_selector", s.message()));
  }
  const int64_t length = target.to_unix_nanos - target.from_unix_nanos;
  if (has_from) {
    s = ParseTime(base_from, now_unix_nanos, &base.from_unix_nanos);
    if (!s.ok()) return StatusReply(ParamError("base_from", s.message()));
    base.to_unix_nanos = base.from_unix_nanos + length;
  }
  if (has_to) {
    s = ParseTime(base_to, now_unix_nanos, &base.to_unix_nanos);
    if (!s.ok()) return StatusReply(ParamError("base_to", s.message()));
    if (!has_from) base.from_unix_nanos = base.to_unix_nanos - length;
  }
  if (base.from_unix_nanos >= base.to_unix_nanos) {
    return StatusReply(ParamError("base_from", "must be before \"base_to\""));
  }

  stackstream::Profile base_profile, target_profile;
  s = store_->Query(base, &base_profile);
  if (!s.ok()) return StatusReply(s);
  s = store_->Query(target, &target_profile);
  if (!s.ok()) return StatusReply(s);
  exporter::DiffResult diff =
      exporter::Diff(base_profile, target_profile, static_cast<size_t>(limit));
  json rows = json::array();
  for (const exporter::DiffRow& r : diff.rows) {
    rows.push_back(json{{"function", r.function},
                        {"module", r.module},
                        {"base_self", r.base_self},
                        {"base_total", r.base_total},
                        {"self", r.self},
                        {"total", r.total},
                        {"base_self_pct", r.base_self_pct},
                        {"base_total_pct", r.base_total_pct},
                        {"self_pct", r.self_pct},
                        {"total_pct", r.total_pct},
                        {"delta_self", r.delta_self},
                        {"delta_total", r.delta_total},
                        {"delta_self_pct", r.delta_self_pct},
                        {"delta_total_pct", r.delta_total_pct}});
  }
  return JsonReply(json{{"base", RangeJson(base, diff.base_total)},
                        {"target", RangeJson(target, diff.target_total)},
                        {"rows", std::move(rows)}});
}

HttpReply ApiHandlers::Series(const QueryParams& params, int64_t now_unix_nanos) {
  ProfileQuery query;
  Status s = ParseProfileQuery(params, now_unix_nanos, QueryParamNames(), &query);
  if (!s.ok()) return StatusReply(s);
  if (!(s = OnlyOneType(query)).ok()) return StatusReply(s);
  std::string function;
  GetParam(params, "function", &function);
  if (function.size() > 4096) return StatusReply(ParamError("function", "longer than 4096 bytes"));
  const int64_t range = query.to_unix_nanos - query.from_unix_nanos;
  int64_t step = std::max<int64_t>(kNanos, (range / 100 + kNanos - 1) / kNanos * kNanos);
  std::string text;
  if (GetParam(params, "step", &text)) {
    s = ParseDuration(text, &step);
    if (!s.ok()) return StatusReply(ParamError("step", s.message()));
    if (step < kNanos / 1000) return StatusReply(ParamError("step", "must be at least 1ms"));
  }
  if (range / step > kMaxSeriesPoints) {
    return StatusReply(ParamError(
        "step", "too small for the range (more than " + std::to_string(kMaxSeriesPoints) +
                    " points)"));
  }
  std::vector<SeriesPoint> points;
  s = store_->Series(query, step, function, &points);
  if (!s.ok()) return StatusReply(s);
  json out = json::array();
  for (const SeriesPoint& p : points) {
    json point = {{"timestamp", FormatRfc3339(p.unix_nanos)},
                  {"unix_seconds", static_cast<double>(p.unix_nanos) / kNanos},
                  {"total", p.total}};
    if (!function.empty()) {
      point["matched"] = p.matched;
      point["share"] = p.total > 0 ? static_cast<double>(p.matched) / p.total : 0.0;
    }
    out.push_back(std::move(point));
  }
  return JsonReply(json{{"service", query.service},
                        {"selector", FormatSelector(query.matchers)},
                        {"function", function},
                        {"from", FormatRfc3339(query.from_unix_nanos)},
                        {"to", FormatRfc3339(query.to_unix_nanos)},
                        {"step_seconds", static_cast<double>(step) / kNanos},
                        {"points", std::move(out)}});
}

}  // namespace collector
}  // namespace stackstream
