// One test per rule of proto/stackstream/v1/VALIDATION.md.
#include "format/validate.h"

#include <gtest/gtest.h>

#include "test_summaries.h"

namespace stackstream {
namespace {

using testing::MakeValidSummary;

void ExpectRejected(const v1::StackSummary& s, Status::Code code, const std::string& needle,
                    const SummaryLimits& limits = {}) {
  Status st = ValidateSummary(s, limits);
  ASSERT_FALSE(st.ok()) << "expected rejection mentioning " << needle;
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
}

TEST(ValidateSummary, AcceptsValid) { EXPECT_TRUE(ValidateSummary(MakeValidSummary()).ok()); }

TEST(ValidateSummary, Rule1SchemaVersion) {
  auto s = MakeValidSummary();
  s.set_schema_version(0);
  ExpectRejected(s, Status::kInvalidArgument, "schema_version");
  s.set_schema_version(kCurrentSchemaVersion + 1);
  ExpectRejected(s, Status::kInvalidArgument, "schema_version");
}

TEST(ValidateSummary, Rule2Identity) {
  auto s = MakeValidSummary();
  s.mutable_process()->clear_service();
  ExpectRejected(s, Status::kInvalidArgument, "process.service");
  s = MakeValidSummary();
  s.mutable_process()->clear_agent_instance_id();
  ExpectRejected(s, Status::kInvalidArgument, "process.agent_instance_id");
}

TEST(ValidateSummary, Rule3TimeWindow) {
  auto s = MakeValidSummary();
  s.set_start_time_unix_nanos(0);
  ExpectRejected(s, Status::kInvalidArgument, "start_time_unix_nanos");
  s = MakeValidSummary();
  s.set_end_time_unix_nanos(s.start_time_unix_nanos() - 1);
  ExpectRejected(s, Status::kInvalidArgument, "end_time_unix_nanos");
}

TEST(ValidateSummary, Rule4ModeAndPeriod) {
  auto s = MakeValidSummary();
  s.set_mode(v1::SAMPLING_MODE_UNSPECIFIED);
  ExpectRejected(s, Status::kInvalidArgument, "mode");
  s = MakeValidSummary();
  s.set_period_nanos(0);
  ExpectRejected(s, Status::kInvalidArgument, "period_nanos");
}

TEST(ValidateSummary, Rule5StringTable) {
  auto s = MakeValidSummary();
  s.clear_string_table();
  ExpectRejected(s, Status::kInvalidArgument, "string_table");
  s = MakeValidSummary();
  s.set_string_table(0, "x");
  ExpectRejected(s, Status::kInvalidArgument, "string_table[0]");
  SummaryLimits lim;
  lim.max_strings = 5;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "string_table", lim);
  lim = SummaryLimits();
  lim.max_string_bytes = 4;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "string_table[1]", lim);
}

TEST(ValidateSummary, Rule6StringIndexes) {
  auto s = MakeValidSummary();
  s.mutable_functions(2)->set_name_strindex(99);
  ExpectRejected(s, Status::kInvalidArgument, "functions[2].name_strindex: 99 out of range");
  s = MakeValidSummary();
  s.mutable_mappings(1)->set_path_strindex(10);
  ExpectRejected(s, Status::kInvalidArgument, "mappings[1].path_strindex");
  s = MakeValidSummary();
  s.mutable_threads(0)->set_name_strindex(1000);
  ExpectRejected(s, Status::kInvalidArgument, "threads[0].name_strindex");
}

TEST(ValidateSummary, Rule7Locations) {
  auto s = MakeValidSummary();
  s.mutable_locations(1)->set_mapping_index(2);
  ExpectRejected(s, Status::kInvalidArgument, "locations[1].mapping_index");
  s = MakeValidSummary();
  s.mutable_locations(0)->clear_lines();
  ExpectRejected(s, Status::kInvalidArgument, "locations[0].lines: empty");
  s = MakeValidSummary();
  s.mutable_locations(2)->mutable_lines(1)->set_function_index(5);
  ExpectRejected(s, Status::kInvalidArgument, "locations[2].lines[1].function_index");
}

TEST(ValidateSummary, Rule8Sizes) {
  SummaryLimits lim;
  lim.max_locations = 3;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "locations", lim);
  lim = SummaryLimits();
  lim.max_stacks = 1;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "stacks", lim);
  lim = SummaryLimits();
  lim.max_depth = 2;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "stacks[0].location_indexes: depth 3",
                 lim);
}

TEST(ValidateSummary, Rule9Stacks) {
  auto s = MakeValidSummary();
  s.mutable_stacks(1)->clear_location_indexes();
  ExpectRejected(s, Status::kInvalidArgument, "stacks[1].location_indexes: empty");
  s = MakeValidSummary();
  s.mutable_stacks(0)->set_location_indexes(1, 17);
  ExpectRejected(s, Status::kInvalidArgument, "stacks[0].location_indexes[1]: 17 out of range");
}

TEST(ValidateSummary, Rule10Samples) {
  auto s = MakeValidSummary();
  s.mutable_samples(1)->set_stack_index(2);
  ExpectRejected(s, Status::kInvalidArgument, "samples[1].stack_index");
  s = MakeValidSummary();
  s.mutable_samples(0)->set_count(0);
  ExpectRejected(s, Status::kInvalidArgument, "samples[0].count");
  s.mutable_samples(0)->set_count(-5);
  ExpectRejected(s, Status::kInvalidArgument, "samples[0].count");
  s = MakeValidSummary();
  s.mutable_samples(0)->set_thread_index(2);
  ExpectRejected(s, Status::kInvalidArgument, "samples[0].thread_index");
}

// Adds a label "key"="value" to samples[i] (strings appended to the table).
void AddSampleLabel(v1::StackSummary* s, int i, const std::string& key, const std::string& value) {
  auto* l = s->mutable_samples(i)->add_labels();
  l->set_key_strindex(static_cast<uint32_t>(s->string_table_size()));
  s->add_string_table(key);
  l->set_value_strindex(static_cast<uint32_t>(s->string_table_size()));
  s->add_string_table(value);
}

TEST(ValidateSummary, Rule10cSampleLabels) {
  auto s = MakeValidSummary();
  AddSampleLabel(&s, 0, "span_id", "00f067aa0ba902b7");
  AddSampleLabel(&s, 0, "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(ValidateSummary(s).ok());
  s.mutable_samples(0)->mutable_labels(1)->set_value_strindex(100000);
  ExpectRejected(s, Status::kInvalidArgument, "samples[0].labels[1].value_strindex");
  s = MakeValidSummary();
  AddSampleLabel(&s, 0, "trace_id", "t");
  AddSampleLabel(&s, 0, "span_id", "s");  // not sorted
  ExpectRejected(s, Status::kInvalidArgument, "samples[0].labels[1].key");
  s = MakeValidSummary();
  AddSampleLabel(&s, 0, "span_id", "s");
  AddSampleLabel(&s, 0, "span_id", "t");  // repeated
  ExpectRejected(s, Status::kInvalidArgument, "not sorted or repeated");
  s = MakeValidSummary();
  AddSampleLabel(&s, 1, "9bad", "v");
  ExpectRejected(s, Status::kInvalidArgument, "samples[1].labels[0].key");
  s = MakeValidSummary();
  AddSampleLabel(&s, 0, "span_name", std::string(300, 'v'));
  ExpectRejected(s, Status::kResourceExhausted, "samples[0].labels[0].value");
  s = MakeValidSummary();
  for (int i = 0; i < 9; ++i) AddSampleLabel(&s, 0, "k" + std::to_string(i), "v");
  ExpectRejected(s, Status::kResourceExhausted, "samples[0].labels");
}

TEST(ValidateSummary, Rule11Labels) {
  auto s = MakeValidSummary();
  auto* l = s.add_labels();
  l->set_key("env");
  l->set_value("again");
  ExpectRejected(s, Status::kInvalidArgument, "duplicate");
  s = MakeValidSummary();
  s.mutable_labels(0)->set_key("9bad");
  ExpectRejected(s, Status::kInvalidArgument, "labels[0].key");
  s = MakeValidSummary();
  s.mutable_labels(0)->set_key("");
  ExpectRejected(s, Status::kInvalidArgument, "labels[0].key");
  s = MakeValidSummary();
  s.mutable_labels(0)->set_key("service");
  ExpectRejected(s, Status::kInvalidArgument, "reserved");
  s = MakeValidSummary();
  s.mutable_labels(0)->set_value(std::string(2000, 'v'));
  ExpectRejected(s, Status::kResourceExhausted, "labels[0].value");
  s = MakeValidSummary();
  s.mutable_labels(0)->set_key(std::string(200, 'k'));
  ExpectRejected(s, Status::kResourceExhausted, "labels[0].key");
  SummaryLimits lim;
  lim.max_labels = 0;
  ExpectRejected(MakeValidSummary(), Status::kResourceExhausted, "labels", lim);
}

TEST(ValidateSummary, Rule12Counters) {
  auto s = MakeValidSummary();
  s.mutable_counters()->set_unwind_failures(-1);
  ExpectRejected(s, Status::kInvalidArgument, "counters");
}

}  // namespace
}  // namespace stackstream
