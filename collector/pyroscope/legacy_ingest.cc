#include "pyroscope/legacy_ingest.h"

#include <cstdlib>
#include <string_view>
#include <vector>

#include "http/query_params.h"
#include "http/selector.h"
#include "http/time_parse.h"

namespace stackstream {
namespace collector {

namespace {

constexpr int64_t kNanos = 1000000000;

uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= 0xff;  // field separator
  h *= 1099511628211ULL;
  return h;
}

// "app.cpu{k=v,k2="v 2"}" -> service "app", type "cpu", labels.
Status ParseName(const std::string& name, std::string* service, std::string* type,
                 Labels* labels) {
  if (name.empty()) return ParamError("name", "missing (e.g. name=app.cpu{env=prod})");
  if (name.size() > 8192) return ParamError("name", "longer than 8192 bytes");
  const size_t brace = name.find('{');
  std::string app = name.substr(0, brace);
  const size_t dot = app.rfind('.');
  *type = dot == std::string::npos ? "cpu" : app.substr(dot + 1);
  *service = dot == std::string::npos ? app : app.substr(0, dot);
  if (service->empty()) return ParamError("name", "no application name before '.' or '{'");
  labels->clear();
  if (brace == std::string::npos) return Status::OK();
  if (name.back() != '}') return ParamError("name", "labels must end with '}'");
  const std::string body = name.substr(brace + 1, name.size() - brace - 2);
  // Pyroscope's form is unquoted (k=v,k2=v2); accept the quoted selector form too.
  if (body.find('"') != std::string::npos) {
    std::vector<LabelMatcher> matchers;
    Status s = ParseSelector("{" + body + "}", &matchers);
    if (!s.ok()) return ParamError("name", s.message());
    for (const auto& m : matchers) {
      if (m.op != LabelMatcher::kEq) return ParamError("name", "labels must be k=v");
      (*labels)[m.name] = m.value;
    }
  } else {
    size_t pos = 0;
    while (pos < body.size()) {
      size_t comma = body.find(',', pos);
      if (comma == std::string::npos) comma = body.size();
      const std::string pair = body.substr(pos, comma - pos);
      pos = comma + 1;
      if (pair.empty()) continue;
      const size_t eq = pair.find('=');
      if (eq == std::string::npos) return ParamError("name", "label \"" + pair + "\" is not k=v");
      std::string k = pair.substr(0, eq), v = pair.substr(eq + 1);
      if (!IsValidLabelName(k)) return ParamError("name", "bad label name \"" + k + "\"");
      (*labels)[k] = v;
    }
  }
  if (labels->size() > kMaxIngestLabels) return ParamError("name", "too many labels");
  for (const auto& [k, v] : *labels) {
    if (k.size() + v.size() > kMaxIngestLabelBytes) return ParamError("name", "label too long");
  }
  labels->erase("__name__");
  if (labels->count("service_name")) {
    *service = (*labels)["service_name"];
    labels->erase("service_name");
  }
  return Status::OK();
}

}  // namespace

HttpReply LegacyIngest::Handle(const QueryParams& params, const std::string& body,
                               int64_t now_unix_nanos) {
  auto reject = [&](const Status& s) {
    if (metrics_ != nullptr) metrics_->Rejected("legacy_invalid");
    return StatusReply(s);
  };
  std::string name, type, text;
  SummaryRecord record;
  GetParam(params, "name", &name);
  Status s = ParseName(name, &record.service, &type, &record.labels);
  if (!s.ok()) return reject(s);
  std::string mode;
  if (type == "cpu" || type == "itimer" || type == "process_cpu") {
    mode = "cpu";
  } else if (type == "wall") {
    mode = "wall";
  } else {
    return reject(ParamError("name", "profile type \"" + type + "\" is not cpu or wall"));
  }
  GetParam(params, "format", &text);
  if (!text.empty() && text != "folded" && text != "lines") {
    if (metrics_ != nullptr) metrics_->Rejected("legacy_format");
    return ErrorReply(415, "invalid parameter \"format\": only folded is accepted, not \"" +
                               text.substr(0, 64) + "\"");
  }
  int64_t rate = 100;
  s = ParseIntParam(params, "sampleRate", 1, 1000000, &rate);
  if (!s.ok()) return reject(s);
  int64_t until = now_unix_nanos, from;
  if (GetParam(params, "until", &text)) {
    s = ParseTime(text, now_unix_nanos, &until);
    if (!s.ok()) return reject(ParamError("until", s.message()));
  }
  from = until - 10 * kNanos;
  if (GetParam(params, "from", &text)) {
    s = ParseTime(text, now_unix_nanos, &from);
    if (!s.ok()) return reject(ParamError("from", s.message()));
  }
  if (from > until) return reject(ParamError("from", "must not be after \"until\""));

  ProfileBuilder builder;
  Profile* p = builder.mutable_profile();
  p->mode = mode;
  p->period_nanos = kNanos / rate;
  p->start_unix_nanos = from;
  p->end_unix_nanos = until > from ? until : from + 1;
  size_t lines = 0, pos = 0;
  int64_t samples = 0;
  std::vector<uint32_t> frames;
  std::vector<std::string_view> names;
  const std::string_view all(body);
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string_view::npos) nl = all.size();
    std::string_view line = all.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (++lines > kMaxIngestLines) {
      return reject(Status::InvalidArgument("body: more than " + std::to_string(kMaxIngestLines) +
                                            " lines"));
    }
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space == 0) {
      return reject(Status::InvalidArgument("body: line " + std::to_string(lines) +
                                            " is not \"stack count\""));
    }
    const std::string count_text(line.substr(space + 1));
    char* end = nullptr;
    const long long count = std::strtoll(count_text.c_str(), &end, 10);
    if (count_text.empty() || *end != '\0' || count < 0 || count > 1000000000000LL) {
      return reject(Status::InvalidArgument("body: line " + std::to_string(lines) +
                                            " has a bad count"));
    }
    if (count == 0) continue;
    names.clear();
    std::string_view stack = line.substr(0, space);
    size_t start = 0;
    while (start <= stack.size()) {
      size_t semi = stack.find(';', start);
      if (semi == std::string_view::npos) semi = stack.size();
      names.push_back(stack.substr(start, semi - start));
      start = semi + 1;
    }
    bool truncated = false;
    if (names.size() > kMaxIngestDepth) {  // keep the leaf end
      names.erase(names.begin(), names.end() - kMaxIngestDepth);
      truncated = true;
    }
    frames.clear();
    for (auto it = names.rbegin(); it != names.rend(); ++it) {  // leaf first
      Frame f;
      f.function = std::string(it->substr(0, 4096));
      frames.push_back(builder.InternFrame(f));
    }
    builder.AddSample(frames, count, truncated);
    samples += count;
  }

  record.labels["service"] = record.service;
  record.agent_instance_id = "pyroscope-ingest/" + record.service;
  uint64_t h = 1469598103934665603ULL;
  h = Fnv1a(h, name);
  h = Fnv1a(h, std::to_string(from));
  h = Fnv1a(h, std::to_string(until));
  h = Fnv1a(h, std::to_string(rate));
  h = Fnv1a(h, body);
  record.sequence = h;
  record.profile = builder.Release();
  bool duplicate = false;
  s = store_->Write(record, &duplicate);
  if (!s.ok()) {
    if (metrics_ != nullptr) metrics_->Rejected("legacy_store");
    return StatusReply(s);
  }
  if (metrics_ != nullptr) {
    if (duplicate) {
      metrics_->SummaryDuplicate();
    } else {
      metrics_->SummaryIngested(samples, static_cast<int64_t>(body.size()));
    }
  }
  HttpReply reply;
  reply.body = "{}\n";
  return reply;
}

}  // namespace collector
}  // namespace stackstream
