#include "pprof_encoder.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace stackstream {

namespace {


// Field numbers of google/pprof proto/profile.proto.
enum ProfileField {
  kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6,
  kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13,
};

// Small protobuf writer for nested messages: each message is built in its
// own string and written length-delimited into its parent.
class Msg {
 public:
  void Varint(int field, uint64_t v) {
    if (v == 0) return;  // proto3 default
    Tag(field, 0);
    Raw(v);
  }
  void Bool(int field, bool v) { Varint(field, v ? 1 : 0); }
  void Bytes(int field, const std::string& b) {
    Tag(field, 2);
    Raw(b.size());
    out_.append(b);
  }
  void Packed(int field, const std::vector<uint64_t>& vs) {
    if (vs.empty()) return;
    Msg tmp;
    for (uint64_t v : vs) tmp.Raw(v);
    Bytes(field, tmp.out_);
  }
  void Sub(int field, const Msg& m) { Bytes(field, m.out_); }
  const std::string& data() const { return out_; }

 private:
  void Tag(int field, int wire) { Raw((static_cast<uint64_t>(field) << 3) | wire); }
  void Raw(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

class StringTable {
 public:
  StringTable() { Index(""); }
  uint64_t Index(const std::string& s) {
    auto it = index_.find(s);
    if (it != index_.end()) return it->second;
    uint64_t i = strings_.size();
    strings_.push_back(s);
    index_.emplace(s, i);
    return i;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint64_t> index_;
};

Msg ValueType(StringTable* st, const std::string& type, const std::string& unit) {
  Msg m;
  m.Varint(1, st->Index(type));
  m.Varint(2, st->Index(unit));
  return m;
}

// What the samples' values mean: one row of values per profile sample.
struct Columns {
  std::vector<std::pair<std::string, std::string>> types;
  std::pair<std::string, std::string> period_type;
  int64_t period = 0;
  std::vector<std::vector<int64_t>> values;
};

std::string Encode(const Profile& profile, const Columns& columns) {
  StringTable st;
  Msg out;
  for (const auto& t : columns.types) out.Sub(kSampleType, ValueType(&st, t.first, t.second));

  // Mappings: one per module (path + build-id).
  std::map<std::pair<std::string, std::string>, uint64_t> mapping_ids;
  // Functions: one per (name, file).
  std::map<std::pair<std::string, std::string>, uint64_t> function_ids;
  // Locations: one per run of inlined frames ending in a real frame.
  std::map<std::vector<uint32_t>, uint64_t> location_ids;
  std::vector<Msg> mappings, functions, locations;

  auto mapping_id = [&](const Frame& f) -> uint64_t {
    if (f.module.empty()) return 0;
    auto key = std::make_pair(f.module, f.build_id);
    auto it = mapping_ids.find(key);
    if (it != mapping_ids.end()) return it->second;
    uint64_t id = mappings.size() + 1;
    Msg m;
    m.Varint(1, id);
    m.Varint(5, st.Index(f.module));
    m.Varint(6, st.Index(f.build_id));
    m.Bool(7, true);  // has_functions
    m.Bool(8, true);  // has_filenames
    m.Bool(9, true);  // has_line_numbers
    m.Bool(10, true); // has_inline_frames
    mappings.push_back(std::move(m));
    mapping_ids.emplace(key, id);
    return id;
  };
  auto function_id = [&](const Frame& f) -> uint64_t {
    auto key = std::make_pair(f.function, f.file);
    auto it = function_ids.find(key);
    if (it != function_ids.end()) return it->second;
    uint64_t id = functions.size() + 1;
    Msg m;
    m.Varint(1, id);
    m.Varint(2, st.Index(f.function));
    m.Varint(3, st.Index(f.function));
    m.Varint(4, st.Index(f.file));
    functions.push_back(std::move(m));
    function_ids.emplace(key, id);
    return id;
  };
  auto location_id = [&](const std::vector<uint32_t>& group) -> uint64_t {
    auto it = location_ids.find(group);
    if (it != location_ids.end()) return it->second;
    uint64_t id = locations.size() + 1;
    Msg m;
    m.Varint(1, id);
    m.Varint(2, mapping_id(profile.frames[group.back()]));
    for (uint32_t fi : group) {  // inlined callee first, caller last
      const Frame& f = profile.frames[fi];
      Msg line;
      line.Varint(1, function_id(f));
      line.Varint(2, static_cast<uint64_t>(f.line));
      m.Sub(4, line);
    }
    locations.push_back(std::move(m));
    location_ids.emplace(group, id);
    return id;
  };

  std::vector<uint64_t> loc_ids;
  std::vector<uint32_t> group;
  for (size_t si = 0; si < profile.samples.size(); ++si) {
    const ProfileSample& s = profile.samples[si];
    loc_ids.clear();
    group.clear();
    for (uint32_t fi : s.frames) {
      group.push_back(fi);
      if (!profile.frames[fi].inlined) {
        loc_ids.push_back(location_id(group));
        group.clear();
      }
    }
    if (!group.empty()) loc_ids.push_back(location_id(group));
    Msg sample;
    sample.Packed(1, loc_ids);
    std::vector<uint64_t> values;
    for (int64_t v : columns.values[si]) values.push_back(static_cast<uint64_t>(v));
    sample.Packed(2, values);
    if (s.truncated) {
      Msg label;
      label.Varint(1, st.Index("truncated"));
      label.Varint(2, st.Index("true"));
      sample.Sub(3, label);
    }
    for (const auto& [key, value] : s.labels) {  // thread labels: span_id, trace_id, ...
      Msg label;
      label.Varint(1, st.Index(key));
      label.Varint(2, st.Index(value));
      sample.Sub(3, label);
    }
    out.Sub(kSample, sample);
  }
  for (const auto& m : mappings) out.Sub(kMapping, m);
  for (const auto& m : locations) out.Sub(kLocation, m);
  for (const auto& m : functions) out.Sub(kFunction, m);
  out.Varint(kTimeNanos, static_cast<uint64_t>(profile.start_unix_nanos));
  if (profile.end_unix_nanos > profile.start_unix_nanos) {
    // Unsigned: a window from far before to far after 1970 does not overflow.
    out.Varint(kDurationNanos, static_cast<uint64_t>(profile.end_unix_nanos) -
                                   static_cast<uint64_t>(profile.start_unix_nanos));
  }
  out.Sub(kPeriodType, ValueType(&st, columns.period_type.first, columns.period_type.second));
  out.Varint(kPeriod, static_cast<uint64_t>(columns.period));
  // comment: repeated int64 string-table indexes (unpacked; parsers accept
  // both forms). Empty comments are skipped: index 0 would be dropped anyway.
  for (const std::string& comment : profile.comments) {
    if (!comment.empty()) out.Varint(kComment, st.Index(comment));
  }

  // The string table last: every index above is final now. Field order on
  // the wire does not matter to protobuf parsers.
  std::string result = out.data();
  Msg strings;
  for (const auto& s : st.strings()) strings.Bytes(kStringTable, s);
  result += strings.data();
  return result;
}

std::string Gzip(const std::string& raw) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::string();
  }
  std::string out;
  out.resize(deflateBound(&zs, raw.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = raw.size();
  zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
  zs.avail_out = out.size();
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::string();
  return out;
}

}  // namespace

std::string EncodePprof(const Profile& profile) {
  Columns c;
  c.values.reserve(profile.samples.size());
  if (IsHeapSampleType(profile.mode)) {
    c.types = {{profile.mode, SampleTypeUnit(profile.mode)}};
    c.period_type = {"space", "bytes"};
    for (const auto& s : profile.samples) c.values.push_back({s.count});
  } else {
    const std::string value_type = profile.mode == "wall" ? "wall" : "cpu";
    c.types = {{"samples", "count"}, {value_type, "nanoseconds"}};
    c.period_type = {value_type, "nanoseconds"};
    c.period = profile.period_nanos;
    for (const auto& s : profile.samples) {
      int64_t nanos;  // saturates: a merged count times the period can exceed int64
      if (__builtin_mul_overflow(s.count, profile.period_nanos, &nanos)) nanos = INT64_MAX;
      c.values.push_back({s.count, nanos});
    }
  }
  return Encode(profile, c);
}

std::string EncodePprofGzip(const Profile& profile) { return Gzip(EncodePprof(profile)); }

std::string EncodeHeapPprofGzip(const Profile* const by_type[4]) {
  ProfileBuilder builder;
  Profile* merged = builder.mutable_profile();
  merged->mode = "heap";
  Columns c;
  for (const char* t : kHeapSampleTypes) c.types.push_back({t, SampleTypeUnit(t)});
  c.period_type = {"space", "bytes"};
  std::map<std::pair<std::vector<uint32_t>, bool>, size_t> rows;
  std::vector<uint32_t> frames;
  for (int i = 0; i < 4; ++i) {
    const Profile* p = by_type[i];
    if (p == nullptr) continue;
    if (p->start_unix_nanos != 0 &&
        (merged->start_unix_nanos == 0 || p->start_unix_nanos < merged->start_unix_nanos)) {
      merged->start_unix_nanos = p->start_unix_nanos;
    }
    merged->end_unix_nanos = std::max(merged->end_unix_nanos, p->end_unix_nanos);
    for (const std::string& comment : p->comments) merged->comments.push_back(comment);
    for (const ProfileSample& s : p->samples) {
      frames.clear();
      for (uint32_t f : s.frames) frames.push_back(builder.InternFrame(p->frames[f]));
      auto key = std::make_pair(frames, s.truncated);
      auto it = rows.find(key);
      if (it == rows.end()) {
        it = rows.emplace(key, merged->samples.size()).first;
        ProfileSample n;
        n.frames = frames;
        n.truncated = s.truncated;
        merged->samples.push_back(std::move(n));
        c.values.push_back(std::vector<int64_t>(4, 0));
      }
      c.values[it->second][i] += s.count;
    }
  }
  return Gzip(Encode(*merged, c));
}

}  // namespace stackstream
