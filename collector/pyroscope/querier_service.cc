#include "pyroscope/querier_service.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "export/call_site.h"
#include "export/dot.h"
#include "export/flamegraph.h"
#include "export/max_nodes.h"
#include "format/pprof_encoder.h"
#include "google/v1/profile.pb.h"
#include "http/selector.h"
#include "pyroscope/connect.h"
#include "pyroscope/profile_ids.h"
#include "pyroscope/query.h"
#include "querier/v1/querier.pb.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

namespace {

namespace qv1 = ::querier::v1;

constexpr int64_t kDefaultMaxNodes = 8192;
constexpr int64_t kMaxMaxNodes = 1 << 20;
constexpr int64_t kDefaultDotNodes = 100;
constexpr size_t kMaxSeries = 200;
// Points per series for which span exemplars are looked up (one query each).
constexpr size_t kMaxSpanExemplarPoints = 720;
constexpr int64_t kMaxPoints = 11000;

int64_t MaxNodes(bool has, int64_t value, int64_t fallback = kDefaultMaxNodes) {
  return std::min<int64_t>(has && value > 0 ? value : fallback, kMaxMaxNodes);
}

// Each matcher string of a request is one selection (Pyroscope ORs them);
// none means everything.
std::vector<Selection> Selections(const google::protobuf::RepeatedPtrField<std::string>& matchers) {
  std::vector<Selection> out;
  for (const std::string& m : matchers) out.push_back(ParseSelection(m, "matchers"));
  if (out.empty()) out.emplace_back();
  return out;
}

std::vector<std::string> CallSite(const qv1::StackTraceSelector& selector) {
  std::vector<std::string> names;
  for (const auto& loc : selector.call_site()) names.push_back(loc.name());
  return names;
}

// The merged profile a SelectMergeStacktraces-like request asks for: type,
// selector, range, call site, profile ids (exemplars of SelectSeries).
Profile SelectProfile(Store* store, const ProfileTypeInfo& type, const std::string& label_selector,
                      int64_t start_ms, int64_t end_ms, const std::vector<std::string>& call_site,
                      const google::protobuf::RepeatedPtrField<std::string>& profile_ids,
                      int64_t now) {
  Selection selection = ParseSelection(label_selector, "label_selector");
  int64_t from, to;
  Range(start_ms, end_ms, now, &from, &to);
  Profile profile;
  if (profile_ids.empty()) {
    profile = MergedProfile(store, selection, type, from, to);
  } else {
    ProfileBuilder builder;
    builder.mutable_profile()->mode = type.mode;
    for (const std::string& id : profile_ids) {
      Selection one = selection;
      for (const LabelMatcher& m : LabelSetOfProfileId(id)) one.labels.push_back(m);
      builder.Merge(MergedProfile(store, one, type, from, to));
    }
    profile = builder.Release();
  }
  return exporter::SelectCallSite(profile, call_site);
}

// The merged profile of the samples taken inside the spans "span_ids" (the
// span_id sample label that stackstream_set_thread_label sets), as Grafana's
// traces-to-profiles asks for it. No span: an empty profile.
Profile SpanProfile(Store* store, const ProfileTypeInfo& type, const std::string& label_selector,
                    const google::protobuf::RepeatedPtrField<std::string>& span_ids,
                    int64_t start_ms, int64_t end_ms, int64_t now) {
  Selection selection = ParseSelection(label_selector, "label_selector");
  int64_t from, to;
  Range(start_ms, end_ms, now, &from, &to);
  std::string any_of;  // span_id=~"id1|id2|..."
  for (const std::string& id : span_ids) {
    const bool ok = !id.empty() && id.size() <= 64 &&
                    std::all_of(id.begin(), id.end(), [](unsigned char c) {
                      return std::isalnum(c) || c == '-' || c == '_';
                    });
    if (!ok) Fail("invalid_argument", "span_selector: \"" + id.substr(0, 100) + "\" is not a span id");
    any_of += (any_of.empty() ? "" : "|") + id;
  }
  if (any_of.empty()) {
    Profile empty;
    empty.mode = type.mode;
    return empty;
  }
  selection.labels.push_back({"span_id", LabelMatcher::kRegex, any_of});
  return MergedProfile(store, selection, type, from, to);
}

// The span with the most samples of "q" in [from, to) (sample label
// span_id), for SelectSeries exemplars; samples 0 when none has a span.
struct TopSpan {
  std::string span_id, trace_id, span_name;
  int64_t samples = 0;
};
TopSpan FindTopSpan(Store* store, ProfileQuery q, int64_t from, int64_t to) {
  q.from_unix_nanos = from;
  q.to_unix_nanos = to;
  q.matchers.push_back(LabelMatcher{"span_id", LabelMatcher::kRegex, ".+"});
  Profile p;
  FailIfError(store->Query(q, &p));
  std::map<std::string, TopSpan> spans;
  for (const ProfileSample& s : p.samples) {
    TopSpan t;
    for (const auto& [k, v] : s.labels) {
      if (k == "span_id") t.span_id = v;
      if (k == "trace_id") t.trace_id = v;
      if (k == "span_name") t.span_name = v;
    }
    TopSpan& acc = spans[t.span_id];
    if (acc.span_id.empty()) acc = t;
    acc.samples += s.count;
  }
  TopSpan best;
  for (const auto& [id, t] : spans) {
    if (t.samples > best.samples) best = t;
  }
  return best;
}

void FillFlameGraph(const exporter::PyroscopeFlameGraph& fg, qv1::FlameGraph* out) {
  for (const auto& n : fg.names) out->add_names(n);
  for (const auto& level : fg.levels) {
    auto* l = out->add_levels();
    for (int64_t v : level) l->add_values(v);
  }
  out->set_total(fg.total);
  out->set_max_self(fg.max_self);
}

// ---- methods --------------------------------------------------------------

void ProfileTypes(Store* store, const qv1::ProfileTypesRequest& req,
                  qv1::ProfileTypesResponse* resp, int64_t now) {
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to, /*all_time_when_no_start=*/true);
  for (const ProfileTypeInfo* t : PresentTypes(store, Selection{}, "", from, to)) {
    auto* pt = resp->add_profile_types();
    pt->set_id(t->id);
    pt->set_name(t->name);
    pt->set_sample_type(t->sample_type);
    pt->set_sample_unit(t->sample_unit);
    pt->set_period_type(t->period_type);
    pt->set_period_unit(t->period_unit);
  }
}

// The modes to ask the store for under "selection": "" (any) when it has no
// type matchers, else each matching mode.
std::vector<std::string> ModesFor(const Selection& selection) {
  if (selection.type_labels.empty()) return {""};
  std::vector<std::string> modes;
  for (const ProfileTypeInfo& t : AllProfileTypes()) {
    if (TypeMatches(selection, t) && std::find(modes.begin(), modes.end(), t.mode) == modes.end()) {
      modes.push_back(t.mode);
    }
  }
  return modes;
}

std::string EqService(const Selection& selection) {
  for (const LabelMatcher& m : selection.labels) {
    if (m.name == "service" && m.op == LabelMatcher::kEq) return m.value;
  }
  return "";
}

void LabelNames(Store* store, const qv1::LabelNamesRequest& req, qv1::LabelNamesResponse* resp,
                int64_t now) {
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to, true);
  std::set<std::string> out;
  for (const Selection& sel : Selections(req.matchers())) {
    if (PresentTypes(store, sel, "", from, to).empty()) continue;
    for (const std::string& mode : ModesFor(sel)) {
      ProfileQuery q;
      q.service = EqService(sel);
      q.matchers = sel.labels;
      q.from_unix_nanos = from;
      q.to_unix_nanos = to;
      q.mode = mode;
      std::vector<std::string> names;
      FailIfError(store->LabelNames(q, &names));
      for (const auto& n : names) out.insert(ToPyroscopeLabel(n));
    }
    out.insert("service_name");
    for (const char* n : {"__name__", "__profile_type__", "__type__", "__unit__", "__period_type__",
                          "__period_unit__"}) {
      out.insert(n);
    }
  }
  for (const auto& n : out) resp->add_names(n);
}

void LabelValues(Store* store, const qv1::LabelValuesRequest& req, qv1::LabelValuesResponse* resp,
                 int64_t now) {
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to, true);
  const std::string name = ToStoreLabel(req.name());
  std::set<std::string> out;
  for (const Selection& sel : Selections(req.matchers())) {
    if (IsTypeLabel(name)) {
      for (const ProfileTypeInfo* t : PresentTypes(store, sel, "", from, to)) {
        out.insert(TypeLabel(*t, name));
      }
    } else if (name == "service") {
      for (const std::string& s : SelectServices(store, sel.labels)) {
        if (sel.type_labels.empty() || !PresentTypes(store, sel, s, from, to).empty()) {
          out.insert(s);
        }
      }
    } else {
      for (const std::string& mode : ModesFor(sel)) {
        ProfileQuery q;
        q.service = EqService(sel);
        q.matchers = sel.labels;
        q.from_unix_nanos = from;
        q.to_unix_nanos = to;
        q.mode = mode;
        std::vector<std::string> values;
        FailIfError(store->LabelValues(q, name, &values));
        out.insert(values.begin(), values.end());
      }
    }
  }
  for (const auto& v : out) resp->add_names(v);
}

// Whether the stored label set "labels" satisfies "matchers" (a missing
// label reads as "").
bool LabelSetMatches(const Labels& labels, const std::vector<LabelMatcher>& matchers) {
  for (const LabelMatcher& m : matchers) {
    auto it = labels.find(m.name);
    if (!MatcherMatches(m, it == labels.end() ? "" : it->second)) return false;
  }
  return true;
}

void Series(Store* store, const qv1::SeriesRequest& req, qv1::SeriesResponse* resp, int64_t now) {
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to, true);
  const std::set<std::string> wanted(req.label_names().begin(), req.label_names().end());
  std::vector<ServiceInfo> infos;
  FailIfError(store->ListServices(&infos));
  std::map<std::string, const ServiceInfo*> by_service;
  for (const ServiceInfo& info : infos) by_service[info.service] = &info;

  std::set<std::vector<std::pair<std::string, std::string>>> seen;
  for (const Selection& sel : Selections(req.matchers())) {
    for (const std::string& service : SelectServices(store, sel.labels)) {
      auto it = by_service.find(service);
      if (it == by_service.end()) continue;
      const std::vector<const ProfileTypeInfo*> types = PresentTypes(store, sel, service, from, to);
      for (Labels labels : it->second->label_sets) {
        labels["service"] = service;
        if (!LabelSetMatches(labels, sel.labels)) continue;
        for (const ProfileTypeInfo* t : types) {
          std::map<std::string, std::string> out;
          for (const auto& [k, v] : labels) out[ToPyroscopeLabel(k)] = v;
          for (const char* n : {"__name__", "__profile_type__", "__type__", "__unit__",
                                "__period_type__", "__period_unit__"}) {
            out[n] = TypeLabel(*t, n);
          }
          std::vector<std::pair<std::string, std::string>> kept;
          for (const auto& kv : out) {
            if (wanted.empty() || wanted.count(kv.first)) kept.push_back(kv);
          }
          if (!seen.insert(kept).second) continue;
          auto* set = resp->add_labels_set();
          for (const auto& [k, v] : kept) {
            auto* l = set->add_labels();
            l->set_name(k);
            l->set_value(v);
          }
        }
      }
    }
  }
}

void SelectMergeStacktraces(Store* store, const qv1::SelectMergeStacktracesRequest& req,
                            qv1::SelectMergeStacktracesResponse* resp, int64_t now) {
  const ProfileTypeInfo& type = RequireProfileType(req.profile_typeid(), "profile_typeID");
  Profile profile;
  if (req.span_selector_size() == 0) {
    profile = SelectProfile(store, type, req.label_selector(), req.start(), req.end(),
                            CallSite(req.stack_trace_selector()), req.profile_id_selector(), now);
  } else {
    profile = SpanProfile(store, type, req.label_selector(), req.span_selector(), req.start(),
                          req.end(), now);
  }
  const int64_t scale = ValueScale(type, profile.period_nanos);
  switch (req.format()) {
    case qv1::PROFILE_FORMAT_TREE:
      resp->set_tree(exporter::EncodePyroscopeTree(
          profile, MaxNodes(req.has_max_nodes(), req.max_nodes()), scale));
      break;
    case qv1::PROFILE_FORMAT_DOT:
      resp->set_dot(exporter::ExportDot(
          profile, MaxNodes(req.has_max_nodes(), req.max_nodes(), kDefaultDotNodes), scale,
          type.sample_unit));
      break;
    case qv1::PROFILE_FORMAT_PPROF: {
      Profile cut =
          exporter::TruncateToMaxNodes(profile, req.has_max_nodes() ? req.max_nodes() : 0);
      if (!resp->mutable_pprof()->mutable_profile()->ParseFromString(EncodePprof(cut))) {
        Fail("internal", "cannot re-read the encoded pprof profile");
      }
      break;
    }
    default:
      FillFlameGraph(exporter::BuildPyroscopeFlameGraph(
                         profile, MaxNodes(req.has_max_nodes(), req.max_nodes()), scale),
                     resp->mutable_flamegraph());
  }
}

void SelectMergeSpanProfile(Store* store, const qv1::SelectMergeSpanProfileRequest& req,
                            qv1::SelectMergeSpanProfileResponse* resp, int64_t now) {
  const ProfileTypeInfo& type = RequireProfileType(req.profile_typeid(), "profile_typeID");
  Profile profile = SpanProfile(store, type, req.label_selector(), req.span_selector(),
                                req.start(), req.end(), now);
  const int64_t scale = ValueScale(type, profile.period_nanos);
  const int64_t max_nodes = MaxNodes(req.has_max_nodes(), req.max_nodes());
  if (req.format() == qv1::PROFILE_FORMAT_TREE) {
    resp->set_tree(exporter::EncodePyroscopeTree(profile, max_nodes, scale));
    return;
  }
  FillFlameGraph(exporter::BuildPyroscopeFlameGraph(profile, max_nodes, scale),
                 resp->mutable_flamegraph());
}

void SelectMergeProfile(Store* store, const qv1::SelectMergeProfileRequest& req,
                        google::v1::Profile* resp, int64_t now) {
  const ProfileTypeInfo& type = RequireProfileType(req.profile_typeid(), "profile_typeID");
  Profile profile =
      SelectProfile(store, type, req.label_selector(), req.start(), req.end(),
                    CallSite(req.stack_trace_selector()), req.profile_id_selector(), now);
  if (req.has_max_nodes() && req.max_nodes() > 0) {
    profile = exporter::TruncateToMaxNodes(profile, req.max_nodes());
  }
  if (!resp->ParseFromString(EncodePprof(profile))) {
    Fail("internal", "cannot re-read the encoded pprof profile");
  }
}

void Diff(Store* store, const qv1::DiffRequest& req, qv1::DiffResponse* resp, int64_t now) {
  auto side = [&](const qv1::SelectMergeStacktracesRequest& r, const char* name,
                  const ProfileTypeInfo** type) {
    if (r.profile_typeid().empty()) Fail("invalid_argument", std::string(name) + " is missing");
    *type = &RequireProfileType(r.profile_typeid(), std::string(name) + ".profile_typeID");
    return SelectProfile(store, **type, r.label_selector(), r.start(), r.end(),
                         CallSite(r.stack_trace_selector()), r.profile_id_selector(), now);
  };
  const ProfileTypeInfo *left_type, *right_type;
  Profile left = side(req.left(), "left", &left_type);
  Profile right = side(req.right(), "right", &right_type);
  const int64_t max_nodes =
      std::max(MaxNodes(req.left().has_max_nodes(), req.left().max_nodes()),
               MaxNodes(req.right().has_max_nodes(), req.right().max_nodes()));
  exporter::PyroscopeFlameGraphDiff d = exporter::BuildPyroscopeFlameGraphDiff(
      left, ValueScale(*left_type, left.period_nanos), right,
      ValueScale(*right_type, right.period_nanos), max_nodes);
  auto* out = resp->mutable_flamegraph();
  for (const auto& n : d.names) out->add_names(n);
  for (const auto& level : d.levels) {
    auto* l = out->add_levels();
    for (int64_t v : level) l->add_values(v);
  }
  out->set_total(d.total);
  out->set_max_self(d.max_self);
  out->set_leftticks(d.left_ticks);
  out->set_rightticks(d.right_ticks);
}

void GetProfileStats(Store* store, const qv1::GetProfileStatsRequest&,
                     qv1::GetProfileStatsResponse* resp, int64_t) {
  std::vector<ServiceInfo> infos;
  FailIfError(store->ListServices(&infos));
  int64_t oldest = std::numeric_limits<int64_t>::max(), newest = 0;
  for (const ServiceInfo& info : infos) {
    oldest = std::min(oldest, info.first_seen_unix_nanos);
    newest = std::max(newest, info.last_seen_unix_nanos);
  }
  resp->set_data_ingested(!infos.empty());
  if (!infos.empty()) {
    resp->set_oldest_profile_time(oldest / kNanosPerMilli);
    resp->set_newest_profile_time(newest / kNanosPerMilli);
  }
}

// The value of one stored sample in "q" (its period when "type" scales).
int64_t SampleValue(Store* store, const ProfileTypeInfo& type, const ProfileQuery& q,
                    int64_t bucket_start, int64_t step) {
  if (!type.scale_by_period) return 1;
  Profile p;
  ProfileQuery pq = q;
  pq.from_unix_nanos = std::max(q.from_unix_nanos, bucket_start);
  pq.to_unix_nanos = std::min(q.to_unix_nanos, bucket_start + step);
  if (pq.from_unix_nanos >= pq.to_unix_nanos) pq.to_unix_nanos = pq.from_unix_nanos + 1;
  FailIfError(store->Query(pq, &p));
  return ValueScale(type, p.period_nanos);
}

void SelectSeries(Store* store, const qv1::SelectSeriesRequest& req,
                  qv1::SelectSeriesResponse* resp, int64_t now) {
  const ProfileTypeInfo& type = RequireProfileType(req.profile_typeid(), "profile_typeID");
  const Selection selection = ParseSelection(req.label_selector(), "label_selector");
  int64_t from, to;
  Range(req.start(), req.end(), now, &from, &to);
  int64_t step = static_cast<int64_t>(req.step() * kNanosPerSecond);
  if (!(req.step() > 0) || req.step() > 1e9 || step <= 0) {
    step = std::max<int64_t>((to - from) / 100, kNanosPerSecond);
  }
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
  const bool average =
      req.has_aggregation() && req.aggregation() == qv1::TIME_SERIES_AGGREGATION_TYPE_AVERAGE;
  const bool exemplars = req.exemplar_type() == qv1::EXEMPLAR_TYPE_INDIVIDUAL;
  // SPAN (and INDIVIDUAL) exemplars carry the point's top span (span_id,
  // trace_id sample labels), so Grafana can open its trace.
  const bool span_exemplars = exemplars || req.exemplar_type() == qv1::EXEMPLAR_TYPE_SPAN;
  if (!TypeMatches(selection, type)) return;
  const std::vector<std::string> services = SelectServices(store, selection.labels);

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
      } else if (IsSampleLabelKey(store_name)) {
        // A sample label (span_name, ...): the values its samples carry.
        for (const std::string& service : services) {
          ProfileQuery q;
          q.service = service;
          q.matchers = selection.labels;
          q.matchers.insert(q.matchers.end(), g.extra.begin(), g.extra.end());
          q.matchers.push_back(LabelMatcher{store_name, LabelMatcher::kRegex, ".+"});
          q.from_unix_nanos = from;
          q.to_unix_nanos = to;
          q.mode = type.mode;
          Profile p;
          FailIfError(store->Query(q, &p));
          for (const ProfileSample& smp : p.samples) {
            for (const auto& [k, v] : smp.labels) {
              if (k == store_name && values.size() < kMaxSeries) values.insert(v);
            }
          }
        }
      } else {
        for (const std::string& service : services) {
          ProfileQuery q;
          q.service = service;
          q.matchers = selection.labels;
          q.matchers.insert(q.matchers.end(), g.extra.begin(), g.extra.end());
          q.from_unix_nanos = from;
          q.to_unix_nanos = to;
          q.mode = type.mode;
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

  // Label sets per service, for averages and exemplars (one stream each).
  std::map<std::string, std::vector<Labels>> label_sets;
  if (average || exemplars) {
    std::vector<ServiceInfo> infos;
    FailIfError(store->ListServices(&infos));
    for (const ServiceInfo& info : infos) label_sets[info.service] = info.label_sets;
  }

  std::vector<std::pair<double, qv1::Series>> all;
  for (const Group& g : groups) {
    struct Point {
      double sum = 0;
      int streams = 0;
      double best = -1;  // largest single stream (exemplar)
      Labels best_labels;
      TopSpan span;      // the span with the most samples (span exemplars)
      double span_value = 0;
    };
    std::map<int64_t, Point> points;  // ms -> point
    for (const std::string& service : services) {
      bool service_ok = true;
      for (const LabelMatcher& m : g.extra) {
        if (m.name == "service" && m.value != service) service_ok = false;
      }
      if (!service_ok) continue;
      ProfileQuery q;
      q.service = service;
      q.matchers = selection.labels;
      q.matchers.insert(q.matchers.end(), g.extra.begin(), g.extra.end());
      q.from_unix_nanos = from;
      q.to_unix_nanos = to;
      q.mode = type.mode;
      std::vector<SeriesPoint> sp;
      FailIfError(store->Series(q, step, function, &sp));
      const int64_t scale =
          sp.empty() ? 1 : SampleValue(store, type, q, sp.front().unix_nanos, step);
      for (const SeriesPoint& p : sp) {
        const int64_t v = function.empty() ? p.total : p.matched;
        points[p.unix_nanos / kNanosPerMilli].sum += static_cast<double>(v) * scale;
      }
      if (span_exemplars && sp.size() <= kMaxSpanExemplarPoints) {
        for (const SeriesPoint& p : sp) {
          TopSpan top = FindTopSpan(store, q, p.unix_nanos, p.unix_nanos + step);
          Point& pt = points[p.unix_nanos / kNanosPerMilli];
          const double v = static_cast<double>(top.samples) * scale;
          if (top.samples > 0 && v > pt.span_value) {
            pt.span = std::move(top);
            pt.span_value = v;
          }
        }
      }
      if (!average && !exemplars) continue;
      // One query per stream (stored label set) of the service.
      for (Labels labels : label_sets[service]) {
        labels["service"] = service;
        if (!LabelSetMatches(labels, q.matchers)) continue;
        ProfileQuery sq = q;
        for (const auto& [k, v] : labels) {
          if (k != "service") sq.matchers.push_back(LabelMatcher{k, LabelMatcher::kEq, v});
        }
        std::vector<SeriesPoint> ssp;
        FailIfError(store->Series(sq, step, function, &ssp));
        for (const SeriesPoint& p : ssp) {
          const double v = static_cast<double>(function.empty() ? p.total : p.matched) * scale;
          if (v <= 0) continue;
          Point& pt = points[p.unix_nanos / kNanosPerMilli];
          pt.streams++;
          if (v > pt.best) {
            pt.best = v;
            pt.best_labels = labels;
          }
        }
      }
    }
    if (points.empty()) continue;
    qv1::Series series;
    double sum = 0;
    for (const auto& [name, value] : g.labels) {
      auto* l = series.add_labels();
      l->set_name(name);
      l->set_value(value);
    }
    for (const auto& [ms, pt] : points) {
      auto* p = series.add_points();
      p->set_timestamp(ms);
      const double value = average && pt.streams > 0 ? pt.sum / pt.streams : pt.sum;
      p->set_value(value);
      sum += value;
      if (!exemplars && span_exemplars && pt.span_value > 0) {
        auto* e = p->add_exemplars();
        e->set_timestamp(ms);
        e->set_span_id(pt.span.span_id);
        e->set_trace_id(pt.span.trace_id);
        e->set_value(static_cast<int64_t>(pt.span_value));
        if (!pt.span.span_name.empty()) {
          auto* l = e->add_labels();
          l->set_name("span_name");
          l->set_value(pt.span.span_name);
        }
      }
      if (exemplars && pt.best > 0) {
        auto* e = p->add_exemplars();
        e->set_timestamp(ms);
        e->set_profile_id(ProfileIdOfLabelSet(pt.best_labels));
        e->set_value(static_cast<int64_t>(pt.best));
        e->set_span_id(pt.span.span_id);  // empty when no sample had a span
        e->set_trace_id(pt.span.trace_id);
        for (const auto& [k, v] : pt.best_labels) {
          bool in_series = false;
          for (const auto& gl : g.labels) in_series = in_series || ToStoreLabel(gl.first) == k;
          if (in_series) continue;
          auto* l = e->add_labels();
          l->set_name(ToPyroscopeLabel(k));
          l->set_value(v);
        }
      }
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
  DecodeRequest(json, body, &req);
  Resp resp;
  fn(store, req, &resp, now);
  return EncodeResponse(json, resp);
}

}  // namespace

HttpReply QuerierService::Handle(const std::string& method, const std::string& content_type,
                                 const std::string& body, int64_t now) {
  try {
    const bool json = IsJsonContentType(content_type);
    if (method == "ProfileTypes") return Call(&ProfileTypes, store_, json, body, now);
    if (method == "LabelNames") return Call(&LabelNames, store_, json, body, now);
    if (method == "LabelValues") return Call(&LabelValues, store_, json, body, now);
    if (method == "Series") return Call(&Series, store_, json, body, now);
    if (method == "SelectMergeStacktraces") {
      return Call(&SelectMergeStacktraces, store_, json, body, now);
    }
    if (method == "SelectMergeSpanProfile") {
      return Call(&SelectMergeSpanProfile, store_, json, body, now);
    }
    if (method == "SelectMergeProfile") return Call(&SelectMergeProfile, store_, json, body, now);
    if (method == "SelectSeries") return Call(&SelectSeries, store_, json, body, now);
    if (method == "Diff") return Call(&Diff, store_, json, body, now);
    if (method == "GetProfileStats") return Call(&GetProfileStats, store_, json, body, now);
    return ConnectError("unimplemented",
                        "querier.v1.QuerierService/" + method.substr(0, 100) + " is not served");
  } catch (const ConnectFailure& f) {
    return ConnectError(f.code, f.message);
  } catch (const std::exception& e) {
    return ConnectError("internal", e.what());
  }
}

HttpReply QuerierService::HandleSettings(const std::string& method, const std::string& content_type,
                                         const std::string&) {
  try {
    const bool json = IsJsonContentType(content_type);
    if (method != "Get") {
      return ConnectError("unimplemented",
                          "settings.v1.SettingsService/" + method.substr(0, 100) +
                              " is not served (stackstream keeps no tenant settings)");
    }
    HttpReply reply;
    if (json) {
      reply.body = R"({"settings":[]})";
    } else {
      reply.content_type = "application/proto";  // an empty GetSettingsResponse
    }
    return reply;
  } catch (const ConnectFailure& f) {
    return ConnectError(f.code, f.message);
  }
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
