#include "export/diff.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "export/top.h"

namespace stackstream {
namespace exporter {

DiffResult Diff(const Profile& base, const Profile& target, size_t limit) {
  DiffResult result;
  result.base_total = base.TotalCount();
  result.target_total = target.TotalCount();
  std::map<std::pair<std::string, std::string>, DiffRow> rows;
  for (const TopRow& r : Top(base)) {
    DiffRow& d = rows[{r.function, r.module}];
    d.function = r.function;
    d.module = r.module;
    d.base_self = r.self;
    d.base_total = r.total;
    d.base_self_pct = r.self_pct;
    d.base_total_pct = r.total_pct;
  }
  for (const TopRow& r : Top(target)) {
    DiffRow& d = rows[{r.function, r.module}];
    d.function = r.function;
    d.module = r.module;
    d.self = r.self;
    d.total = r.total;
    d.self_pct = r.self_pct;
    d.total_pct = r.total_pct;
  }
  for (auto& [key, d] : rows) {
    d.delta_self = d.self - d.base_self;
    d.delta_total = d.total - d.base_total;
    d.delta_self_pct = d.self_pct - d.base_self_pct;
    d.delta_total_pct = d.total_pct - d.base_total_pct;
    result.rows.push_back(std::move(d));
  }
  std::sort(result.rows.begin(), result.rows.end(), [](const DiffRow& a, const DiffRow& b) {
    double pa = std::fabs(a.delta_self_pct), pb = std::fabs(b.delta_self_pct);
    if (pa != pb) return pa > pb;
    int64_t sa = std::llabs(a.delta_self), sb = std::llabs(b.delta_self);
    if (sa != sb) return sa > sb;
    if (a.function != b.function) return a.function < b.function;
    return a.module < b.module;
  });
  if (limit > 0 && result.rows.size() > limit) result.rows.resize(limit);
  return result;
}

}  // namespace exporter
}  // namespace stackstream
