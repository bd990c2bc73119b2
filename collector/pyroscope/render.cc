#include "pyroscope/render.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "export/dot.h"
#include "export/flamegraph.h"
#include "http/query_params.h"
#include "http/time_parse.h"
#include "pyroscope/connect.h"
#include "pyroscope/query.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

namespace {

using nlohmann::json;

constexpr int64_t kDefaultMaxNodes = 8192;
constexpr int64_t kMaxMaxNodes = 1 << 20;
constexpr int64_t kTimelinePoints = 100;

// Fails with invalid_argument naming the parameter.
[[noreturn]] void BadParam(const std::string& name, const std::string& message) {
  Fail("invalid_argument", "invalid parameter \"" + name + "\": " + message);
}

int64_t Time(const QueryParams& params, const std::string& name, int64_t fallback, int64_t now) {
  std::string text;
  if (!GetParam(params, name, &text) || text.empty()) return fallback;
  // Milliseconds ("1700000000000"), as some clients send.
  if (text.size() >= 12 && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() <= 16) {
    int64_t nanos = 0;
    if (__builtin_mul_overflow(std::stoll(text), kNanosPerMilli, &nanos)) {
      BadParam(name, "milliseconds out of range");
    }
    return nanos;
  }
  int64_t out = 0;
  Status s = ParseTime(text, now, &out);
  if (!s.ok()) BadParam(name, s.message());
  return out;
}

int64_t MaxNodesParam(const QueryParams& params) {
  for (const char* name : {"max-nodes", "maxNodes", "max_nodes"}) {
    std::string text;
    if (!GetParam(params, name, &text)) continue;
    if (text.empty() || text.size() > 9 ||
        text.find_first_not_of("0123456789") != std::string::npos) {
      BadParam(name, "must be a positive integer");
    }
    const int64_t v = std::stoll(text);
    return v > 0 ? std::min(v, kMaxMaxNodes) : kDefaultMaxNodes;
  }
  return kDefaultMaxNodes;
}

struct RenderQuery {
  const ProfileTypeInfo* type = nullptr;
  Selection selection;
  int64_t from = 0, to = 0;
};

RenderQuery ParseRenderQuery(const QueryParams& params, const std::string& query_name,
                             const std::string& from_name, const std::string& until_name,
                             int64_t now) {
  std::string query;
  if (!GetParam(params, query_name, &query) || query.empty()) BadParam(query_name, "missing");
  const size_t brace = query.find('{');
  std::string prefix = query.substr(0, brace);
  while (!prefix.empty() && prefix.back() == ' ') prefix.pop_back();
  RenderQuery out;
  out.selection = ParseSelection(brace == std::string::npos ? "" : query.substr(brace), query_name);
  out.type = FindProfileType(prefix);
  if (out.type == nullptr) {
    // Legacy "app.cpu": service "app", the type named by the suffix.
    const size_t dot = prefix.rfind('.');
    const std::string suffix = dot == std::string::npos ? "" : prefix.substr(dot + 1);
    for (const ProfileTypeInfo& t : AllProfileTypes()) {
      if (suffix == t.mode) {
        out.type = &t;
        break;
      }
    }
    if (out.type == nullptr) {
      BadParam(query_name, "\"" + prefix.substr(0, 200) +
                               "\" is neither a profile type ID nor <app>.<cpu|wall|...>");
    }
    out.selection.labels.push_back(
        LabelMatcher{"service", LabelMatcher::kEq, prefix.substr(0, dot)});
  }
  out.to = Time(params, until_name, now, now);
  out.from = Time(params, from_name, out.to - 3600 * kNanosPerSecond, now);
  if (out.from >= out.to) BadParam(from_name, "must be before \"" + until_name + "\"");
  return out;
}

// Values of the type over the query range in kTimelinePoints steps.
json Timeline(Store* store, const RenderQuery& q, int64_t scale) {
  const int64_t step = std::max<int64_t>((q.to - q.from) / kTimelinePoints, kNanosPerSecond);
  const int64_t start = q.from / step * step;
  std::vector<int64_t> samples(static_cast<size_t>((q.to - start + step - 1) / step), 0);
  if (TypeMatches(q.selection, *q.type)) {
    for (const std::string& service : SelectServices(store, q.selection.labels)) {
      ProfileQuery pq;
      pq.service = service;
      pq.matchers = q.selection.labels;
      pq.from_unix_nanos = q.from;
      pq.to_unix_nanos = q.to;
      pq.mode = q.type->mode;
      std::vector<SeriesPoint> points;
      FailIfError(store->Series(pq, step, "", &points));
      for (const SeriesPoint& p : points) {
        const int64_t i = (p.unix_nanos - start) / step;
        if (i >= 0 && i < static_cast<int64_t>(samples.size())) samples[i] += p.total * scale;
      }
    }
  }
  return json{{"startTime", start / kNanosPerSecond},
              {"samples", samples},
              {"durationDelta", step / kNanosPerSecond}};
}

json Metadata(const ProfileTypeInfo& type, const char* format) {
  return json{{"format", format},
              {"spyName", "stackstream"},
              {"sampleRate", type.scale_by_period ? kNanosPerSecond : 0},
              {"units", type.units},
              {"name", type.id}};
}

HttpReply JsonReply(const json& doc) {
  HttpReply reply;
  reply.body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  return reply;
}

template <typename Fn>
HttpReply Guard(Fn fn) {
  try {
    return fn();
  } catch (const ConnectFailure& f) {
    return ErrorReply(f.code == "invalid_argument" ? 400
                      : f.code == "unavailable"    ? 503
                                                   : 500,
                      f.message);
  }
}

}  // namespace

HttpReply RenderApi::Render(const QueryParams& params, int64_t now) {
  return Guard([&] {
    std::string format;
    if (!GetParam(params, "format", &format) || format.empty()) format = "json";
    if (format != "json" && format != "dot") BadParam("format", "must be json or dot");
    const RenderQuery q = ParseRenderQuery(params, "query", "from", "until", now);
    const int64_t max_nodes = MaxNodesParam(params);
    Profile profile = MergedProfile(store_, q.selection, *q.type, q.from, q.to);
    const int64_t scale = ValueScale(*q.type, profile.period_nanos);
    if (format == "dot") {
      HttpReply reply;
      reply.content_type = "text/plain; charset=utf-8";
      reply.body = exporter::ExportDot(profile, std::min<int64_t>(max_nodes, 100), scale,
                                       q.type->sample_unit);
      return reply;
    }
    exporter::PyroscopeFlameGraph fg =
        exporter::BuildPyroscopeFlameGraph(profile, max_nodes, scale);
    return JsonReply(json{{"version", 1},
                          {"flamebearer",
                           {{"names", fg.names},
                            {"levels", fg.levels},
                            {"numTicks", fg.total},
                            {"maxSelf", fg.max_self}}},
                          {"metadata", Metadata(*q.type, "single")},
                          {"timeline", Timeline(store_, q, scale)}});
  });
}

HttpReply RenderApi::RenderDiff(const QueryParams& params, int64_t now) {
  return Guard([&] {
    std::string format;
    if (!GetParam(params, "format", &format) || format.empty()) format = "json";
    if (format != "json") BadParam("format", "must be json");
    const RenderQuery left = ParseRenderQuery(params, "leftQuery", "leftFrom", "leftUntil", now);
    const RenderQuery right =
        ParseRenderQuery(params, "rightQuery", "rightFrom", "rightUntil", now);
    const int64_t max_nodes = MaxNodesParam(params);
    Profile lp = MergedProfile(store_, left.selection, *left.type, left.from, left.to);
    Profile rp = MergedProfile(store_, right.selection, *right.type, right.from, right.to);
    const int64_t ls = ValueScale(*left.type, lp.period_nanos);
    const int64_t rs = ValueScale(*right.type, rp.period_nanos);
    exporter::PyroscopeFlameGraphDiff d =
        exporter::BuildPyroscopeFlameGraphDiff(lp, ls, rp, rs, max_nodes);
    return JsonReply(json{{"version", 1},
                          {"flamebearer",
                           {{"names", d.names},
                            {"levels", d.levels},
                            {"numTicks", d.total},
                            {"maxSelf", d.max_self}}},
                          {"metadata", Metadata(*left.type, "double")},
                          {"leftTicks", d.left_ticks},
                          {"rightTicks", d.right_ticks},
                          {"leftTimeline", Timeline(store_, left, ls)},
                          {"rightTimeline", Timeline(store_, right, rs)}});
  });
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
