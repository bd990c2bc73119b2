#include "export/top.h"

#include <algorithm>
#include <map>
#include <utility>

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

std::vector<TopRow> Top(const Profile& profile, size_t limit) {
  // Intern (function, module) keys once per frame.
  std::vector<TopRow> rows;
  std::map<std::pair<std::string, std::string>, uint32_t> key_index;
  std::vector<uint32_t> frame_key(profile.frames.size());
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const Frame& f = profile.frames[i];
    auto key = std::make_pair(FrameName(f), f.module);
    auto it = key_index.find(key);
    if (it == key_index.end()) {
      it = key_index.emplace(key, static_cast<uint32_t>(rows.size())).first;
      TopRow row;
      row.function = key.first;
      row.module = key.second;
      rows.push_back(std::move(row));
    }
    frame_key[i] = it->second;
    TopRow& row = rows[it->second];
    if (row.file.empty() && !f.file.empty()) row.file = f.file;
    if (f.line > 0 && f.file == row.file && (row.line == 0 || f.line < row.line)) {
      row.line = f.line;
    }
  }

  int64_t grand_total = 0;
  std::vector<uint32_t> seen;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0) continue;
    grand_total += sample.count;
    seen.clear();
    for (uint32_t f : sample.frames) {
      if (f < frame_key.size()) seen.push_back(frame_key[f]);
    }
    if (seen.empty()) continue;
    if (sample.frames[0] < frame_key.size()) rows[frame_key[sample.frames[0]]].self += sample.count;
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (uint32_t k : seen) rows[k].total += sample.count;
  }

  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [](const TopRow& r) { return r.total == 0; }),
             rows.end());
  for (TopRow& r : rows) {
    if (grand_total > 0) {
      r.self_pct = 100.0 * static_cast<double>(r.self) / static_cast<double>(grand_total);
      r.total_pct = 100.0 * static_cast<double>(r.total) / static_cast<double>(grand_total);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const TopRow& a, const TopRow& b) {
    if (a.self != b.self) return a.self > b.self;
    if (a.total != b.total) return a.total > b.total;
    if (a.function != b.function) return a.function < b.function;
    return a.module < b.module;
  });
  if (limit > 0 && rows.size() > limit) rows.resize(limit);
  return rows;
}

}  // namespace exporter
}  // namespace stackstream
