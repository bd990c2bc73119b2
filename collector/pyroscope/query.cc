#include "pyroscope/query.h"

#include <algorithm>
#include <limits>
#include <set>

#include "http/selector.h"
#include "storage/label_match.h"
#include "pyroscope/connect.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

namespace {

constexpr size_t kMaxServicesPerQuery = 1000;

}  // namespace

std::string ToStoreLabel(const std::string& name) {
  return name == "service_name" ? "service" : name;
}

std::string ToPyroscopeLabel(const std::string& name) {
  return name == "service" ? "service_name" : name;
}

bool IsTypeLabel(const std::string& name) {
  return name == "__profile_type__" || name == "__name__" || name == "__type__" ||
         name == "__unit__" || name == "__period_type__" || name == "__period_unit__";
}

std::string TypeLabel(const ProfileTypeInfo& type, const std::string& name) {
  if (name == "__profile_type__") return type.id;
  if (name == "__name__") return type.name;
  if (name == "__type__") return type.sample_type;
  if (name == "__unit__") return type.sample_unit;
  if (name == "__period_type__") return type.period_type;
  if (name == "__period_unit__") return type.period_unit;
  return "";
}

bool MatcherMatches(const LabelMatcher& m, const std::string& value) {
  switch (m.op) {
    case LabelMatcher::kEq:
      return value == m.value;
    case LabelMatcher::kNotEq:
      return value != m.value;
    case LabelMatcher::kRegex:
    case LabelMatcher::kNotRegex: {
      LabelRegex re;
      Status s = LabelRegex::Compile(m.value, &re);
      if (!s.ok()) Fail("invalid_argument", s.message());
      bool match = re.FullMatch(value);
      return m.op == LabelMatcher::kRegex ? match : !match;
    }
  }
  return false;
}

Selection ParseSelection(const std::string& selector, const std::string& what,
                         std::string* prefix) {
  std::vector<LabelMatcher> matchers;
  Status s = ParseSelector(selector, &matchers, prefix);
  if (!s.ok()) Fail("invalid_argument", what + ": " + s.message());
  Selection out;
  for (LabelMatcher& m : matchers) {
    if (IsTypeLabel(m.name)) {
      out.type_labels.push_back(std::move(m));
    } else {
      m.name = ToStoreLabel(m.name);
      out.labels.push_back(std::move(m));
    }
  }
  return out;
}

bool TypeMatches(const Selection& selection, const ProfileTypeInfo& type) {
  for (const LabelMatcher& m : selection.type_labels) {
    if (!MatcherMatches(m, TypeLabel(type, m.name))) return false;
  }
  return true;
}

void Range(int64_t start_ms, int64_t end_ms, int64_t now, int64_t* from, int64_t* to,
           bool all_time_when_no_start) {
  constexpr int64_t kMaxMs = 9000000000000;
  if (start_ms < 0 || end_ms < 0 || start_ms > kMaxMs || end_ms > kMaxMs) {
    Fail("invalid_argument", "start/end out of range (milliseconds since epoch)");
  }
  *to = end_ms > 0 ? end_ms * kNanosPerMilli : now;
  if (start_ms > 0) {
    *from = start_ms * kNanosPerMilli;
  } else {
    *from = all_time_when_no_start ? 0 : *to - 3600 * kNanosPerSecond;
  }
  if (*from >= *to) Fail("invalid_argument", "start must be before end");
}

std::vector<std::string> SelectServices(Store* store, const std::vector<LabelMatcher>& labels) {
  for (const LabelMatcher& m : labels) {
    if (m.name == "service" && m.op == LabelMatcher::kEq) return {m.value};
  }
  std::vector<ServiceInfo> infos;
  FailIfError(store->ListServices(&infos));
  std::vector<std::string> out;
  for (const ServiceInfo& info : infos) {
    bool ok = true;
    for (const LabelMatcher& m : labels) {
      if (m.name == "service" && !MatcherMatches(m, info.service)) ok = false;
    }
    if (ok) out.push_back(info.service);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > kMaxServicesPerQuery) out.resize(kMaxServicesPerQuery);
  return out;
}

std::vector<const ProfileTypeInfo*> PresentTypes(Store* store, const Selection& selection,
                                                 const std::string& service, int64_t from,
                                                 int64_t to) {
  const std::vector<std::string> services =
      service.empty() ? SelectServices(store, selection.labels) : std::vector<std::string>{service};
  std::set<std::string> modes_with_data;
  std::set<std::string> modes_checked;
  std::vector<const ProfileTypeInfo*> out;
  for (const ProfileTypeInfo& type : AllProfileTypes()) {
    if (!TypeMatches(selection, type)) continue;
    if (modes_checked.insert(type.mode).second) {
      for (const std::string& svc : services) {
        ProfileQuery q;
        q.service = svc;
        q.matchers = selection.labels;
        q.from_unix_nanos = from;
        q.to_unix_nanos = to;
        q.mode = type.mode;
        std::vector<SeriesPoint> points;
        FailIfError(store->Series(q, std::numeric_limits<int64_t>::max(), "", &points));
        bool any = false;
        for (const SeriesPoint& p : points) any = any || p.total > 0;
        if (any) {
          modes_with_data.insert(type.mode);
          break;
        }
      }
    }
    if (modes_with_data.count(type.mode)) out.push_back(&type);
  }
  return out;
}

Profile MergedProfile(Store* store, const Selection& selection, const ProfileTypeInfo& type,
                      int64_t from, int64_t to) {
  ProfileBuilder builder;
  builder.mutable_profile()->mode = type.mode;
  if (!TypeMatches(selection, type)) return builder.Release();
  for (const std::string& service : SelectServices(store, selection.labels)) {
    ProfileQuery q;
    q.service = service;
    q.matchers = selection.labels;
    q.from_unix_nanos = from;
    q.to_unix_nanos = to;
    q.mode = type.mode;
    Profile p;
    FailIfError(store->Query(q, &p));
    builder.Merge(p);
  }
  return builder.Release();
}

const ProfileTypeInfo& RequireProfileType(const std::string& id, const std::string& what) {
  const ProfileTypeInfo* t = FindProfileType(id);
  if (t == nullptr) {
    Fail("invalid_argument", "unknown " + what + " \"" + id.substr(0, 200) + "\"");
  }
  return *t;
}

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
