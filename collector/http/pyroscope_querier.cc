#include "http/pyroscope_querier.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <vector>

#include "export/flamegraph.h"
#include "http/selector.h"
#include "querier/v1/querier.pb.h"

namespace stackstream {
namespace collector {

namespace {

constexpr int64_t kNanosPerMilli = 1000000;
constexpr int64_t kNanosPerSecond = 1000000000;
constexpr int64_t kDefaultMaxNodes = 8192;
constexpr size_t kMaxServicesPerQuery = 1000;
constexpr size_t kMaxSeries = 200;
constexpr int64_t kMaxPoints = 11000;

struct ProfileTypeInfo {
  const char* id;
  const char* name;
  const char* sample_type;
  const char* sample_unit;
  const char* mode;
  bool scale_by_period;  // value = samples x period (nanoseconds)
};

constexpr ProfileTypeInfo kProfileTypes[] = {
    {"process_cpu:cpu:nanoseconds:cpu:nanoseconds", "process_cpu", "cpu", "nanoseconds", "cpu",
     true},
    {"process_cpu:samples:count:cpu:nanoseconds", "process_cpu", "samples", "count", "cpu", false},
    {"wall:wall:nanoseconds:wall:nanoseconds", "wall", "wall", "nanoseconds", "wall", true},
};

// Thrown inside Handle only; turned into a Connect error at its boundary.
struct ConnectFailure {
  std::string code;
  std::string message;
};

[[noreturn]] void Fail(const std::string& code, const std::string& message) {
  throw ConnectFailure{code, message};
}

void FailIfError(const Status& s) {
  if (s.ok()) return;
  switch (s.code()) {
    case Status::kInvalidArgument: Fail("invalid_argument", s.message());
    case Status::kNotFound: Fail("not_found", s.message());
    case Status::kUnavailable: Fail("unavailable", s.message());
    case Status::kResourceExhausted: Fail("resource_exhausted", s.message());
    default: Fail("internal", s.message());
  }
}

const ProfileTypeInfo& LookupProfileType(const std::string& id) {
  for (const auto& t : kProfileTypes) {
    if (id == t.id) return t;
  }
  Fail("invalid_argument", "unknown profile_typeID \"" + id.substr(0, 200) + "\"");
}

// Pyroscope label name -> stackstream label name.
std::string ToStoreLabel(const std::string& name) {
  return name == "service_name" ? "service" : name;
}

std::vector<LabelMatcher> ParseMatchers(const std::string& selector) {
  std::vector<LabelMatcher> matchers;
  Status s = ParseSelector(selector, &matchers);
  if (!s.ok()) Fail("invalid_argument", "label_selector: " + s.message());
  for (LabelMatcher& m : matchers) m.name = ToStoreLabel(m.name);
  return matchers;
}

bool Matches(const LabelMatcher& m, const std::string& value) {
  switch (m.op) {
    case LabelMatcher::kEq: return value == m.value;
    case LabelMatcher::kNotEq: return value != m.value;
    case LabelMatcher::kRegex:
    case LabelMatcher::kNotRegex: {
      bool match = std::regex_match(value, std::regex(m.value, std::regex::ECMAScript));
      return m.op == LabelMatcher::kRegex ? match : !match;
    }
  }
  return false;
}

// The services the "service" matchers select (all services when none).
std::vector<std::string> SelectServices(Store* store, const std::vector<LabelMatcher>& matchers) {
  for (const LabelMatcher& m : matchers) {
    if (m.name == "service" && m.op == LabelMatcher::kEq) return {m.value};
  }
  std::vector<ServiceInfo> infos;
  FailIfError(store->ListServices(&infos));
  std::vector<std::string> out;
  for (const ServiceInfo& info : infos) {
    bool ok = true;
    for (const LabelMatcher& m : matchers) {
      if (m.name == "service" && !Matches(m, info.service)) ok = false;
    }
    if (ok) out.push_back(info.service);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > kMaxServicesPerQuery) out.resize(kMaxServicesPerQuery);
  return out;
}

// [start, end) in nanoseconds from a request's milliseconds; defaults to
// the last hour when both are 0.
void Range(int64_t start_ms, int64_t end_ms, int64_t now, int64_t* from, int64_t* to) {
  if (start_ms < 0 || end_ms < 0 || start_ms > 9000000000000 || end_ms > 9000000000000) {
    Fail("invalid_argument", "start/end out of range (milliseconds since epoch)");
  }
  *to = end_ms > 0 ? end_ms * kNanosPerMilli : now;
  *from = start_ms > 0 ? start_ms * kNanosPerMilli : *to - 3600 * kNanosPerSecond;
  if (*from >= *to) Fail("invalid_argument", "start must be before end");
}

Profile MergedProfile(Store* store, const std::vector<LabelMatcher>& matchers, const char* mode,
                      int64_t from, int64_t to) {
  ProfileBuilder builder;
  for (const std::string& service : SelectServices(store, matchers)) {
    ProfileQuery q;
    q.service = service;
    q.matchers = matchers;
    q.from_unix_nanos = from;
    q.to_unix_nanos = to;
    q.mode = mode;
    Profile p;
    FailIfError(store->Query(q, &p));
    builder.Merge(p);
  }
  return builder.Release();
}

// ---- methods --------------------------------------------------------------

void ProfileTypes(Store*, const querier::v1::ProfileTypesRequest&,
                  querier::v1::ProfileTypesResponse* resp, int64_t) {
  for (const auto& t : kProfileTypes) {
    auto* pt = resp->add_profile_types();
    pt->set_id(t.id);
    pt->set_name(t.name);
    pt->set_sample_type(t.sample_type);
    pt->set_sample_unit(t.sample_unit);
    pt->set_period_type(std::string(t.mode) == "wall" ? "wall" : "cpu");
    pt->set_period_unit("nanoseconds");
  }
}

void LabelNames(Store* store, const querier::v1::LabelNamesRequest& req,
                querier::v1::LabelNamesResponse* resp, int64_t now) {
  ProfileQuery q;
  if (req.matchers_size() > 0) q.matchers = ParseMatchers(req.matchers(0));
  for (const LabelMatcher& m : q.matchers) {
    if (m.name == "service" && m.op == LabelMatcher::kEq) q.service = m.value;
  }
  Range(req.start(), req.end(), now, &q.from_unix_nanos, &q.to_unix_nanos);
  if (req.start() == 0) q.from_unix_nanos = 0;
  std::vector<std::string> names;
  FailIfError(store->LabelNames(q, &names));
  std::set<std::string> out(names.begin(), names.end());
  out.insert("service_name");
  out.erase("service");
  for (const auto& n : out) resp->add_names(n);
}

void LabelValues(Store* store, const querier::v1::LabelValuesRequest& req,
                 querier::v1::LabelValuesResponse* resp, int64_t now) {
  ProfileQuery q;
  if (req.matchers_size() > 0) q.matchers = ParseMatchers(req.matchers(0));
  Range(req.start(), req.end(), now, &q.from_unix_nanos, &q.to_unix_nanos);
  if (req.start() == 0) q.from_unix_nanos = 0;
  const std::string name = ToStoreLabel(req.name());
  std::set<std::string> out;
  if (name == "service") {
    for (const auto& s : SelectServices(store, q.matchers)) out.insert(s);
  } else if (name == "__name__") {
    out = {"process_cpu", "wall"};
  } else {
    for (const LabelMatcher& m : q.matchers) {
      if (m.name == "service" && m.op == LabelMatcher::kEq) q.service = m.value;
    }
    std::vector<std::string> values;
    FailIfError(store->LabelValues(q, name, &values));
    out.insert(values.begin(), values.end());
  }
  for (const auto& v : out) resp->add_names(v);
}

void SelectMergeStacktraces(Store* store, const querier::v1::SelectMergeStacktracesRequest& req,
                            querier::v1::SelectMergeStacktracesResponse* resp, int64_t now) {
  const ProfileTypeInfo& type = LookupProfileType(req.profile_typeid());
  std::vector<LabelMatcher> matchers = ParseMatchers(req.label_selector());
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to);
  Profile profile = MergedProfile(store, matchers, type.mode, from, to);
  int64_t max_nodes = req.has_max_nodes() && req.max_nodes() > 0 ? req.max_nodes()
                                                                 : kDefaultMaxNodes;
  max_nodes = std::min<int64_t>(max_nodes, 1 << 20);
  const int64_t scale = type.scale_by_period ? std::max<int64_t>(profile.period_nanos, 1) : 1;
  exporter::PyroscopeFlameGraph fg = exporter::BuildPyroscopeFlameGraph(profile, max_nodes, scale);
  auto* out = resp->mutable_flamegraph();
  for (auto& n : fg.names) out->add_names(std::move(n));
  for (const auto& level : fg.levels) {
    auto* l = out->add_levels();
    for (int64_t v : level) l->add_values(v);
  }
  out->set_total(fg.total);
  out->set_max_self(fg.max_self);
}

void SelectSeries(Store* store, const querier::v1::SelectSeriesRequest& req,
                  querier::v1::SelectSeriesResponse* resp, int64_t now) {
  const ProfileTypeInfo& type = LookupProfileType(req.profile_typeid());
  std::vector<LabelMatcher> matchers = ParseMatchers(req.label_selector());
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to);
  int64_t step = static_cast<int64_t>(req.step() * kNanosPerSecond);
  if (!(req.step() > 0) || req.step() > 1e9) step = std::max<int64_t>((to - from) / 100, kNanosPerSecond);
  if ((to - from) / step > kMaxPoints) {
    Fail("invalid_argument", "step too small for the range (more than 11000 points)");
  }
  std::string function;
  if (req.has_stack_trace_selector() && req.stack_trace_selector().call_site_size() > 0) {
    const auto& sites = req.stack_trace_selector().call_site();
    function = sites[sites.size() - 1].name();
  }
  const size_t limit = req.has_limit() && req.limit() > 0
                           ? std::min<size_t>(static_cast<size_t>(req.limit()), kMaxSeries)
                           : kMaxSeries;
  const std::vector<std::string> services = SelectServices(store, matchers);

  // Groups: every combination of the group_by labels' values.
  struct Group {
    std::vector<std::pair<std::string, std::string>> labels;  // pyroscope names
    std::vector<LabelMatcher> extra;
  };
  std::vector<Group> groups = {Group{}};
  for (const std::string& by : req.group_by()) {
    const std::string store_name = ToStoreLabel(by);
    std::vector<Group> next;
    for (const Group& g : groups) {
      std::set<std::string> values;
      if (store_name == "service") {
        values.insert(services.begin(), services.end());
      } else {
        for (const std::string& service : services) {
          ProfileQuery q;
          q.service = service;
          q.matchers = matchers;
          q.matchers.insert(q.matchers.end(), g.extra.begin(), g.extra.end());
          q.from_unix_nanos = from;
          q.to_unix_nanos = to;
          std::vector<std::string> v;
          FailIfError(store->LabelValues(q, store_name, &v));
          values.insert(v.begin(), v.end());
        }
      }
      for (const std::string& v : values) {
        Group ng = g;
        ng.labels.emplace_back(by, v);
        ng.extra.push_back(LabelMatcher{store_name, LabelMatcher::kEq, v});
        next.push_back(std::move(ng));
        if (next.size() > kMaxSeries) break;
      }
    }
    groups = std::move(next);
  }

  std::vector<std::pair<double, querier::v1::Series>> all;
  for (const Group& g : groups) {
    std::map<int64_t, double> points;  // ms -> value
    for (const std::string& service : services) {
      bool service_ok = true;
      for (const LabelMatcher& m : g.extra) {
        if (m.name == "service" && m.value != service) service_ok = false;
      }
      if (!service_ok) continue;
      ProfileQuery q;
      q.service = service;
      q.matchers = matchers;
      q.matchers.insert(q.matchers.end(), g.extra.begin(), g.extra.end());
      q.from_unix_nanos = from;
      q.to_unix_nanos = to;
      q.mode = type.mode;
      std::vector<SeriesPoint> sp;
      FailIfError(store->Series(q, step, function, &sp));
      // The period is per series in storage; read it from a merged profile
      // only when values are scaled (one cheap query per service).
      // only when values are scaled, from the first point's step alone.
      int64_t scale = 1;
      if (type.scale_by_period && !sp.empty()) {
        Profile p;
        ProfileQuery pq = q;
        pq.from_unix_nanos = std::max(from, sp.front().unix_nanos);
        pq.to_unix_nanos = std::min(to, sp.front().unix_nanos + step);
        if (pq.from_unix_nanos >= pq.to_unix_nanos) pq.to_unix_nanos = pq.from_unix_nanos + 1;
        FailIfError(store->Query(pq, &p));
        scale = std::max<int64_t>(p.period_nanos, 1);
      }
      for (const SeriesPoint& p : sp) {
        const int64_t v = function.empty() ? p.total : p.matched;
        points[p.unix_nanos / kNanosPerMilli] += static_cast<double>(v) * scale;
      }
    }
    if (points.empty()) continue;
    querier::v1::Series series;
    double sum = 0;
    for (const auto& [name, value] : g.labels) {
      auto* l = series.add_labels();
      l->set_name(name);
      l->set_value(value);
    }
    for (const auto& [ms, value] : points) {
      auto* p = series.add_points();
      p->set_timestamp(ms);
      p->set_value(value);
      sum += value;
    }
    all.emplace_back(sum, std::move(series));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  if (all.size() > limit) all.resize(limit);
  for (auto& [sum, s] : all) *resp->add_series() = std::move(s);
}

template <typename Req, typename Resp>
HttpReply Call(void (*fn)(Store*, const Req&, Resp*, int64_t), Store* store, bool json,
               const std::string& body, int64_t now) {
  Req req;
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(body.empty() ? "{}" : body, &req, options)
             .ok()) {
      Fail("invalid_argument", "cannot parse the JSON request body");
    }
  } else if (!req.ParseFromString(body)) {
    Fail("invalid_argument", "cannot parse the protobuf request body");
  }
  Resp resp;
  fn(store, req, &resp, now);
  HttpReply reply;
  if (json) {
    reply.content_type = "application/json";
    if (!google::protobuf::util::MessageToJsonString(resp, &reply.body).ok()) {
      Fail("internal", "cannot encode the JSON response");
    }
  } else {
    reply.content_type = "application/proto";
    reply.body = resp.SerializeAsString();
  }
  return reply;
}

}  // namespace

HttpReply ConnectError(const std::string& code, const std::string& message) {
  static const std::map<std::string, int> kStatus = {
      {"invalid_argument", 400}, {"unauthenticated", 401}, {"not_found", 404},
      {"unimplemented", 501},    {"unavailable", 503},     {"resource_exhausted", 429},
      {"internal", 500}};
  auto it = kStatus.find(code);
  HttpReply reply;
  reply.status = it == kStatus.end() ? 500 : it->second;
  reply.content_type = "application/json";
  reply.body = nlohmann::json{{"code", code}, {"message", message}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return reply;
}

HttpReply PyroscopeQuerier::Handle(const std::string& method, const std::string& content_type,
                                   const std::string& body, int64_t now) {
  const std::string ct = content_type.substr(0, content_type.find(';'));
  bool json;
  if (ct == "application/proto" || ct == "application/x-protobuf") {
    json = false;
  } else if (ct == "application/json") {
    json = true;
  } else {
    return ConnectError("invalid_argument",
                        "Content-Type must be application/proto or application/json, not \"" +
                            ct.substr(0, 100) + "\"");
  }
  try {
    if (method == "ProfileTypes") return Call(&ProfileTypes, store_, json, body, now);
    if (method == "LabelNames") return Call(&LabelNames, store_, json, body, now);
    if (method == "LabelValues") return Call(&LabelValues, store_, json, body, now);
    if (method == "SelectMergeStacktraces") {
      return Call(&SelectMergeStacktraces, store_, json, body, now);
    }
    if (method == "SelectSeries") return Call(&SelectSeries, store_, json, body, now);
    return ConnectError("unimplemented",
                        "querier.v1.QuerierService/" + method.substr(0, 100) + " is not served");
  } catch (const ConnectFailure& f) {
    return ConnectError(f.code, f.message);
  } catch (const std::exception& e) {
    return ConnectError("internal", e.what());
  }
}

}  // namespace collector
}  // namespace stackstream
