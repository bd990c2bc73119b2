#include "summary_convert.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <vector>

namespace stackstream {

const char* ModeName(v1::SamplingMode mode) {
  switch (mode) {
    case v1::SAMPLING_MODE_CPU:
      return "cpu";
    case v1::SAMPLING_MODE_WALL:
      return "wall";
    default:
      return "unknown";
  }
}

std::map<std::string, std::string> SummaryLabels(const v1::StackSummary& summary) {
  std::map<std::string, std::string> labels;
  for (const auto& l : summary.labels()) labels[l.key()] = l.value();
  labels["service"] = summary.process().service();
  return labels;
}

namespace {

void AddSamples(const v1::StackSummary& s,
                const google::protobuf::RepeatedPtrField<v1::Sample>& samples,
                ProfileBuilder* builder) {
  Profile* p = builder->mutable_profile();
  if (p->start_unix_nanos == 0 || s.start_time_unix_nanos() < p->start_unix_nanos) {
    p->start_unix_nanos = s.start_time_unix_nanos();
  }
  if (s.end_time_unix_nanos() > p->end_unix_nanos) p->end_unix_nanos = s.end_time_unix_nanos();

  const auto& strings = s.string_table();
  builder->Reserve(s.locations_size(), samples.size());
  // Each location expands to one frame per line, inlined callee first; the
  // last line is the real (non-inlined) frame. Frame indexes of location i:
  // location_frames[location_start[i] .. location_start[i + 1]).
  std::vector<uint32_t> location_frames, location_start(s.locations_size() + 1, 0);
  for (int i = 0; i < s.locations_size(); ++i) {
    const auto& loc = s.locations(i);
    const auto& mapping = s.mappings(loc.mapping_index());
    for (int j = 0; j < loc.lines_size(); ++j) {
      const auto& line = loc.lines(j);
      const auto& fn = s.functions(line.function_index());
      Frame f;
      f.function = strings[fn.name_strindex()];
      f.file = strings[fn.filename_strindex()];
      f.line = line.line();
      f.module = strings[mapping.path_strindex()];
      f.build_id = mapping.build_id();
      f.inlined = j + 1 < loc.lines_size();
      location_frames.push_back(builder->InternFrame(std::move(f)));
    }
    location_start[i + 1] = static_cast<uint32_t>(location_frames.size());
  }
  // The same for stacks: stack_frames[stack_start[i] .. stack_start[i + 1]).
  std::vector<uint32_t> stack_frames, stack_start(s.stacks_size() + 1, 0);
  for (int i = 0; i < s.stacks_size(); ++i) {
    for (uint32_t loc : s.stacks(i).location_indexes()) {
      stack_frames.insert(stack_frames.end(), location_frames.begin() + location_start[loc],
                          location_frames.begin() + location_start[loc + 1]);
    }
    stack_start[i + 1] = static_cast<uint32_t>(stack_frames.size());
  }
  SampleLabels labels;
  for (const auto& smp : samples) {
    labels.clear();
    for (const auto& l : smp.labels()) {
      labels.emplace_back(strings[l.key_strindex()], strings[l.value_strindex()]);
    }
    const uint32_t st = smp.stack_index();
    builder->AddSample(stack_frames.data() + stack_start[st], stack_start[st + 1] - stack_start[st],
                       smp.count(), s.stacks(st).truncated(), labels);
  }
}

}  // namespace

void AddSummaryToProfile(const v1::StackSummary& s, ProfileBuilder* builder) {
  Profile* p = builder->mutable_profile();
  if (p->samples.empty()) {
    p->mode = ModeName(s.mode());
    p->period_nanos = s.period_nanos();
  }
  AddSamples(s, s.samples(), builder);
}

void AddSampleSetToProfile(const v1::StackSummary& s, const v1::SampleSet& set,
                           ProfileBuilder* builder) {
  Profile* p = builder->mutable_profile();
  if (p->samples.empty()) {
    p->mode = set.type();
    p->period_nanos = 1;
  }
  AddSamples(s, set.samples(), builder);
}

void AddSummaryCounters(const v1::Counters& counters, std::map<std::string, int64_t>* out) {
  const google::protobuf::Descriptor* d = counters.GetDescriptor();
  const google::protobuf::Reflection* r = counters.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_INT64) continue;
    int64_t v = r->GetInt64(counters, f);
    if (v != 0) (*out)[f->name()] += v;
  }
}

std::vector<std::string> CounterComments(const std::map<std::string, int64_t>& counters) {
  std::vector<std::string> out;
  for (const auto& [name, value] : counters) {
    if (value != 0) out.push_back("stackstream: " + name + "=" + std::to_string(value));
  }
  return out;
}

}  // namespace stackstream
