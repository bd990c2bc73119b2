#include "test_summaries.h"

namespace stackstream {
namespace testing {

v1::StackSummary MakeValidSummary() {
  v1::StackSummary s;
  s.set_schema_version(1);
  auto* p = s.mutable_process();
  p->set_service("demo");
  p->set_host("host1");
  p->set_pid(4242);
  p->set_executable_path("/usr/bin/demo");
  p->set_executable_build_id("abcd1234");
  p->set_agent_version("0.1.0");
  p->set_agent_instance_id("0123456789abcdef0123456789abcdef");
  auto* l = s.add_labels();
  l->set_key("env");
  l->set_value("test");
  s.set_start_time_unix_nanos(1700000000000000000LL);
  s.set_end_time_unix_nanos(1700000010000000000LL);
  s.set_mode(v1::SAMPLING_MODE_CPU);
  s.set_period_nanos(10000000);
  for (const char* str : {"", "/usr/bin/demo", "main", "demo.cc", "work", "hot", "hot_inner",
                          "idle", "/lib/libc.so.6", "worker-1"}) {
    s.add_string_table(str);
  }
  auto* m0 = s.add_mappings();
  m0->set_memory_start(0x400000);
  m0->set_memory_limit(0x500000);
  m0->set_path_strindex(1);
  m0->set_build_id("abcd1234");
  auto* m1 = s.add_mappings();
  m1->set_path_strindex(8);
  // functions: 0 main, 1 work, 2 hot, 3 hot_inner, 4 idle
  const int names[] = {2, 4, 5, 6, 7};
  for (int n : names) {
    auto* f = s.add_functions();
    f->set_name_strindex(n);
    f->set_filename_strindex(3);
    f->set_start_line(10 * n);
  }
  auto add_loc = [&](uint64_t off, std::initializer_list<std::pair<int, int>> lines) {
    auto* loc = s.add_locations();
    loc->set_mapping_index(0);
    loc->set_file_offset(off);
    for (auto [fn, line] : lines) {
      auto* ln = loc->add_lines();
      ln->set_function_index(fn);
      ln->set_line(line);
    }
  };
  add_loc(0x1000, {{0, 12}});            // 0: main
  add_loc(0x2000, {{1, 22}});            // 1: work
  add_loc(0x3000, {{3, 33}, {2, 31}});   // 2: hot_inner inlined into hot
  add_loc(0x4000, {{4, 44}});            // 3: idle
  auto* st0 = s.add_stacks();
  for (int i : {2, 1, 0}) st0->add_location_indexes(i);
  auto* st1 = s.add_stacks();
  for (int i : {3, 0}) st1->add_location_indexes(i);
  auto* th = s.add_threads();
  th->set_tid(4243);
  th->set_name_strindex(9);
  auto* sm0 = s.add_samples();
  sm0->set_stack_index(0);
  sm0->set_count(7);
  sm0->set_thread_index(1);
  auto* sm1 = s.add_samples();
  sm1->set_stack_index(1);
  sm1->set_count(3);
  s.mutable_counters()->set_samples_dropped_ring_full(2);
  return s;
}

}  // namespace testing
}  // namespace stackstream
