#include "ingest_summaries.h"

#include <map>
#include <sstream>

namespace stackstream {
namespace collector {
namespace testing {

v1::StackSummary MakeSummary(const std::string& instance, const std::string& service,
                             int64_t start_unix_nanos, const std::vector<FoldedCount>& stacks,
                             int64_t pid) {
  v1::StackSummary s;
  s.set_schema_version(1);
  auto* p = s.mutable_process();
  p->set_service(service);
  p->set_host("testhost");
  p->set_pid(pid);
  p->set_executable_path("/usr/bin/" + service);
  p->set_agent_version("test");
  p->set_agent_instance_id(instance);
  s.set_start_time_unix_nanos(start_unix_nanos);
  s.set_end_time_unix_nanos(start_unix_nanos + 10000000000LL);
  s.set_mode(v1::SAMPLING_MODE_CPU);
  s.set_period_nanos(10000000);
  s.add_string_table("");
  std::map<std::string, uint32_t> strings;
  auto str = [&](const std::string& v) {
    auto it = strings.find(v);
    if (it != strings.end()) return it->second;
    uint32_t idx = static_cast<uint32_t>(s.string_table_size());
    s.add_string_table(v);
    strings.emplace(v, idx);
    return idx;
  };
  auto* m = s.add_mappings();
  m->set_memory_start(0x400000);
  m->set_memory_limit(0x800000);
  m->set_path_strindex(str("/usr/bin/" + service));
  m->set_build_id("b1d0");
  std::map<std::string, uint32_t> locations;  // frame name -> location index
  auto loc = [&](const std::string& name) {
    auto it = locations.find(name);
    if (it != locations.end()) return it->second;
    uint32_t fi = static_cast<uint32_t>(s.functions_size());
    auto* f = s.add_functions();
    f->set_name_strindex(str(name));
    f->set_filename_strindex(str(name + ".cc"));
    f->set_start_line(1);
    uint32_t li = static_cast<uint32_t>(s.locations_size());
    auto* l = s.add_locations();
    l->set_mapping_index(0);
    l->set_file_offset(0x1000 + 16 * li);
    auto* line = l->add_lines();
    line->set_function_index(fi);
    line->set_line(10 + li);
    locations.emplace(name, li);
    return li;
  };
  for (const FoldedCount& fc : stacks) {
    std::vector<std::string> names;
    std::stringstream ss(fc.first);
    std::string item;
    while (std::getline(ss, item, ';')) names.push_back(item);
    auto* st = s.add_stacks();
    for (size_t i = names.size(); i-- > 0;) st->add_location_indexes(loc(names[i]));
    auto* smp = s.add_samples();
    smp->set_stack_index(static_cast<uint32_t>(s.stacks_size() - 1));
    smp->set_count(fc.second);
  }
  return s;
}

int64_t SampleTotal(const v1::StackSummary& summary) {
  int64_t total = 0;
  for (const auto& smp : summary.samples()) total += smp.count();
  return total;
}

}  // namespace testing
}  // namespace collector
}  // namespace stackstream
