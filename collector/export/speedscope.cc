#include "export/speedscope.h"

#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "export/frame_names.h"

namespace stackstream {
namespace exporter {

std::string ExportSpeedscope(const Profile& profile, const std::string& name) {
  using nlohmann::json;
  const std::string title = name.empty() ? profile.mode : name;
  const int64_t period = profile.period_nanos > 0 ? profile.period_nanos : 1;

  // speedscope frames, deduplicated by (name, file, line).
  json frames = json::array();
  std::map<std::tuple<std::string, std::string, int64_t>, int64_t> frame_index;
  auto intern = [&](const std::string& fname, const std::string& file, int64_t line) {
    auto key = std::make_tuple(fname, file, line);
    auto it = frame_index.find(key);
    if (it != frame_index.end()) return it->second;
    json f = {{"name", fname}};
    if (!file.empty()) f["file"] = file;
    if (line > 0) f["line"] = line;
    frames.push_back(std::move(f));
    int64_t idx = static_cast<int64_t>(frames.size()) - 1;
    frame_index.emplace(std::move(key), idx);
    return idx;
  };
  std::vector<int64_t> remap(profile.frames.size());
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const Frame& f = profile.frames[i];
    remap[i] = intern(FrameName(f), f.file, f.line);
  }

  json samples = json::array();
  json weights = json::array();
  int64_t end_value = 0;
  for (const ProfileSample& sample : profile.samples) {
    if (sample.count <= 0 || sample.frames.empty()) continue;
    json stack = json::array();
    if (sample.truncated) stack.push_back(intern(kTruncatedFrame, "", 0));
    for (auto it = sample.frames.rbegin(); it != sample.frames.rend(); ++it) {
      stack.push_back(*it < remap.size() ? remap[*it] : intern(kUnknownFrame, "", 0));
    }
    const int64_t weight = sample.count * period;
    samples.push_back(std::move(stack));
    weights.push_back(weight);
    end_value += weight;
  }

  json doc = {
      {"$schema", "https://www.speedscope.app/file-format-schema.json"},
      {"exporter", "stackstream"},
      {"name", title},
      {"activeProfileIndex", 0},
      {"shared", {{"frames", std::move(frames)}}},
      {"profiles", json::array({json{{"type", "sampled"},
                                     {"name", title},
                                     {"unit", "nanoseconds"},
                                     {"startValue", 0},
                                     {"endValue", end_value},
                                     {"samples", std::move(samples)},
                                     {"weights", std::move(weights)}}})},
  };
  // Invalid UTF-8 in a symbol must not throw: replace it.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace exporter
}  // namespace stackstream
