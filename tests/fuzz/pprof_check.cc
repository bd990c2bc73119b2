#include "pprof_check.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/unknown_field_set.h>

#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "fuzz_check.h"

namespace stackstream {
namespace fuzz {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// The varints of a packed field (or one unpacked varint).
void AppendVarints(const UnknownField& f, std::vector<uint64_t>* out) {
  if (f.type() == UnknownField::TYPE_VARINT) {
    out->push_back(f.varint());
    return;
  }
  FUZZ_CHECK(f.type() == UnknownField::TYPE_LENGTH_DELIMITED, "field %d: wire type %d",
             f.number(), static_cast<int>(f.type()));
  const std::string& d = f.length_delimited();
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(d.data()),
                                            static_cast<int>(d.size()));
  uint64_t v;
  while (in.BytesUntilLimit() > 0) {
    FUZZ_CHECK(in.ReadVarint64(&v), "field %d: bad packed varint", f.number());
    out->push_back(v);
  }
}

std::unique_ptr<UnknownFieldSet> Message(const UnknownField& f) {
  FUZZ_CHECK(f.type() == UnknownField::TYPE_LENGTH_DELIMITED, "field %d is not a message",
             f.number());
  auto m = std::make_unique<UnknownFieldSet>();
  FUZZ_CHECK(m->ParseFromString(f.length_delimited()), "field %d: not a message", f.number());
  return m;
}

}  // namespace

void CheckPprof(const std::string& bytes, const Profile& profile) {
  UnknownFieldSet p;
  FUZZ_CHECK(p.ParseFromString(bytes), "not a protobuf message (%zu bytes)", bytes.size());
  size_t sample_types = 0, strings = 0;
  std::set<uint64_t> location_ids, function_ids;
  std::vector<std::vector<uint64_t>> sample_locations, sample_values, location_functions;
  std::vector<uint64_t> string_refs;
  for (int i = 0; i < p.field_count(); ++i) {
    const UnknownField& f = p.field(i);
    switch (f.number()) {
      case 1: {  // sample_type: ValueType {type = 1, unit = 2}
        ++sample_types;
        auto vt = Message(f);
        for (int j = 0; j < vt->field_count(); ++j) AppendVarints(vt->field(j), &string_refs);
        break;
      }
      case 2: {  // sample {location_id = 1, value = 2, label = 3}
        auto s = Message(f);
        std::vector<uint64_t> locs, values;
        for (int j = 0; j < s->field_count(); ++j) {
          if (s->field(j).number() == 1) AppendVarints(s->field(j), &locs);
          if (s->field(j).number() == 2) AppendVarints(s->field(j), &values);
        }
        sample_locations.push_back(locs);
        sample_values.push_back(values);
        break;
      }
      case 4: {  // location {id = 1, mapping_id = 2, address = 3, line = 4 {function_id = 1}}
        auto l = Message(f);
        std::vector<uint64_t> ids, functions;
        for (int j = 0; j < l->field_count(); ++j) {
          if (l->field(j).number() == 1) AppendVarints(l->field(j), &ids);
          if (l->field(j).number() == 4) {
            auto line = Message(l->field(j));
            for (int k = 0; k < line->field_count(); ++k) {
              if (line->field(k).number() == 1) AppendVarints(line->field(k), &functions);
            }
          }
        }
        FUZZ_CHECK(ids.size() == 1 && ids[0] != 0, "location without an id");
        FUZZ_CHECK(location_ids.insert(ids[0]).second, "location id %llu twice",
                   static_cast<unsigned long long>(ids[0]));
        location_functions.push_back(functions);
        break;
      }
      case 5: {  // function {id = 1, name = 2, system_name = 3, filename = 4}
        auto fn = Message(f);
        for (int j = 0; j < fn->field_count(); ++j) {
          std::vector<uint64_t> v;
          AppendVarints(fn->field(j), &v);
          if (fn->field(j).number() == 1) function_ids.insert(v.at(0));
          if (fn->field(j).number() >= 2 && fn->field(j).number() <= 4) {
            string_refs.insert(string_refs.end(), v.begin(), v.end());
          }
        }
        break;
      }
      case 6:  // string_table
        FUZZ_CHECK(f.type() == UnknownField::TYPE_LENGTH_DELIMITED, "string_table wire type");
        FUZZ_CHECK(strings > 0 || f.length_delimited().empty(), "string_table[0] is not \"\"");
        ++strings;
        break;
      default:
        break;
    }
  }
  FUZZ_CHECK(sample_types >= 1, "no sample_type");
  int64_t total = 0;
  for (size_t i = 0; i < sample_values.size(); ++i) {
    FUZZ_CHECK(sample_values[i].size() == sample_types, "sample %zu: %zu values, %zu types", i,
               sample_values[i].size(), sample_types);
    total += static_cast<int64_t>(sample_values[i][0]);
    for (uint64_t id : sample_locations[i]) {
      FUZZ_CHECK(location_ids.count(id) == 1, "sample %zu: location %llu missing", i,
                 static_cast<unsigned long long>(id));
    }
  }
  for (const auto& functions : location_functions) {
    for (uint64_t id : functions) {
      FUZZ_CHECK(function_ids.count(id) == 1, "function %llu missing",
                 static_cast<unsigned long long>(id));
    }
  }
  for (uint64_t s : string_refs) {
    FUZZ_CHECK(s < strings, "string %llu of %zu", static_cast<unsigned long long>(s), strings);
  }
  FUZZ_CHECK(total == profile.TotalCount(), "pprof total %lld, profile total %lld",
             static_cast<long long>(total), static_cast<long long>(profile.TotalCount()));
}

}  // namespace fuzz
}  // namespace stackstream
