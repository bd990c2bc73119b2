#include "validate.h"

#include "profile.h"

#include <set>
#include <string>

namespace stackstream {

namespace {

std::string Idx(const char* field, int i) { return std::string(field) + "[" + std::to_string(i) + "]"; }

Status OutOfRange(const std::string& path, uint64_t value, int size, const char* what) {
  return Status::InvalidArgument(path + ": " + std::to_string(value) + " out of range (" +
                                 std::to_string(size) + " " + what + ")");
}

bool ValidLabelKey(const std::string& k) {
  if (k.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(k[0])) return false;
  for (char c : k) {
    if (!(alpha(c) || (c >= '0' && c <= '9') || c == '.')) return false;
  }
  return true;
}

}  // namespace

Status ValidateSummary(const v1::StackSummary& s, const SummaryLimits& limits) {
  // 1. schema version
  if (s.schema_version() < 1 || s.schema_version() > kCurrentSchemaVersion) {
    return Status::InvalidArgument("schema_version: " + std::to_string(s.schema_version()) +
                                   " not supported (1.." + std::to_string(kCurrentSchemaVersion) +
                                   ")");
  }
  // 2. identity
  if (s.process().service().empty()) return Status::InvalidArgument("process.service: empty");
  if (s.process().agent_instance_id().empty()) {
    return Status::InvalidArgument("process.agent_instance_id: empty");
  }
  // 3. time window
  if (s.start_time_unix_nanos() <= 0) {
    return Status::InvalidArgument("start_time_unix_nanos: must be > 0");
  }
  if (s.end_time_unix_nanos() < s.start_time_unix_nanos()) {
    return Status::InvalidArgument("end_time_unix_nanos: before start_time_unix_nanos");
  }
  // 4. mode and period
  if (s.mode() != v1::SAMPLING_MODE_CPU && s.mode() != v1::SAMPLING_MODE_WALL) {
    return Status::InvalidArgument("mode: must be CPU or WALL");
  }
  if (s.period_nanos() <= 0) return Status::InvalidArgument("period_nanos: must be > 0");
  // 5. string table
  const int nstr = s.string_table_size();
  if (nstr == 0) return Status::InvalidArgument("string_table: empty (string_table[0] must be \"\")");
  if (!s.string_table(0).empty()) return Status::InvalidArgument("string_table[0]: must be \"\"");
  if (nstr > limits.max_strings) {
    return Status::ResourceExhausted("string_table: " + std::to_string(nstr) + " strings (max " +
                                     std::to_string(limits.max_strings) + ")");
  }
  for (int i = 0; i < nstr; ++i) {
    if (static_cast<int64_t>(s.string_table(i).size()) > limits.max_string_bytes) {
      return Status::ResourceExhausted(Idx("string_table", i) + ": " +
                                       std::to_string(s.string_table(i).size()) + " bytes (max " +
                                       std::to_string(limits.max_string_bytes) + ")");
    }
  }
  // Paths for messages are built only when a check fails: this runs on every
  // summary ingested, and almost all of them are valid.
  const auto bad_str = [nstr](uint32_t idx) { return idx >= static_cast<uint32_t>(nstr); };
  // 6. string indexes in mappings, functions, threads
  for (int i = 0; i < s.mappings_size(); ++i) {
    if (bad_str(s.mappings(i).path_strindex())) {
      return OutOfRange(Idx("mappings", i) + ".path_strindex", s.mappings(i).path_strindex(), nstr,
                        "strings");
    }
  }
  for (int i = 0; i < s.functions_size(); ++i) {
    const auto& f = s.functions(i);
    const std::pair<const char*, uint32_t> fields[] = {
        {".name_strindex", f.name_strindex()},
        {".system_name_strindex", f.system_name_strindex()},
        {".filename_strindex", f.filename_strindex()}};
    for (const auto& [field, idx] : fields) {
      if (bad_str(idx)) return OutOfRange(Idx("functions", i) + field, idx, nstr, "strings");
    }
  }
  for (int i = 0; i < s.threads_size(); ++i) {
    if (bad_str(s.threads(i).name_strindex())) {
      return OutOfRange(Idx("threads", i) + ".name_strindex", s.threads(i).name_strindex(), nstr,
                        "strings");
    }
  }
  // 8. sizes
  if (s.locations_size() > limits.max_locations) {
    return Status::ResourceExhausted("locations: " + std::to_string(s.locations_size()) +
                                     " (max " + std::to_string(limits.max_locations) + ")");
  }
  if (s.stacks_size() > limits.max_stacks) {
    return Status::ResourceExhausted("stacks: " + std::to_string(s.stacks_size()) + " (max " +
                                     std::to_string(limits.max_stacks) + ")");
  }
  // 7. locations
  for (int i = 0; i < s.locations_size(); ++i) {
    const auto& loc = s.locations(i);
    const auto p = [i] { return Idx("locations", i); };
    if (loc.mapping_index() >= static_cast<uint32_t>(s.mappings_size())) {
      return OutOfRange(p() + ".mapping_index", loc.mapping_index(), s.mappings_size(), "mappings");
    }
    if (loc.lines_size() == 0) return Status::InvalidArgument(p() + ".lines: empty");
    for (int j = 0; j < loc.lines_size(); ++j) {
      if (loc.lines(j).function_index() >= static_cast<uint32_t>(s.functions_size())) {
        return OutOfRange(p() + Idx(".lines", j) + ".function_index", loc.lines(j).function_index(),
                          s.functions_size(), "functions");
      }
    }
  }
  // 9. stacks
  for (int i = 0; i < s.stacks_size(); ++i) {
    const auto& stack = s.stacks(i);
    const auto p = [i] { return Idx("stacks", i); };
    if (stack.location_indexes_size() == 0) {
      return Status::InvalidArgument(p() + ".location_indexes: empty");
    }
    if (stack.location_indexes_size() > limits.max_depth) {
      return Status::ResourceExhausted(p() + ".location_indexes: depth " +
                                       std::to_string(stack.location_indexes_size()) + " (max " +
                                       std::to_string(limits.max_depth) + ")");
    }
    for (int j = 0; j < stack.location_indexes_size(); ++j) {
      if (stack.location_indexes(j) >= static_cast<uint32_t>(s.locations_size())) {
        return OutOfRange(p() + Idx(".location_indexes", j), stack.location_indexes(j),
                          s.locations_size(), "locations");
      }
    }
  }
  // 10. samples
  for (int i = 0; i < s.samples_size(); ++i) {
    const auto& smp = s.samples(i);
    const auto p = [i] { return Idx("samples", i); };
    if (smp.stack_index() >= static_cast<uint32_t>(s.stacks_size())) {
      return OutOfRange(p() + ".stack_index", smp.stack_index(), s.stacks_size(), "stacks");
    }
    if (smp.count() <= 0) {
      return Status::InvalidArgument(p() + ".count: " + std::to_string(smp.count()) +
                                     " (must be > 0)");
    }
    if (smp.thread_index() > static_cast<uint32_t>(s.threads_size())) {
      return OutOfRange(p() + ".thread_index", smp.thread_index(), s.threads_size(), "threads");
    }
    // 10c. sample labels
    if (smp.labels_size() > limits.max_sample_labels) {
      return Status::ResourceExhausted(p() + ".labels: " + std::to_string(smp.labels_size()) +
                                       " (max " + std::to_string(limits.max_sample_labels) + ")");
    }
    const std::string* prev_key = nullptr;
    for (int j = 0; j < smp.labels_size(); ++j) {
      const auto& l = smp.labels(j);
      const auto q = [&p, j] { return p() + Idx(".labels", j); };
      if (l.key_strindex() >= static_cast<uint32_t>(nstr)) {
        return OutOfRange(q() + ".key_strindex", l.key_strindex(), nstr, "strings");
      }
      if (l.value_strindex() >= static_cast<uint32_t>(nstr)) {
        return OutOfRange(q() + ".value_strindex", l.value_strindex(), nstr, "strings");
      }
      const std::string& key = s.string_table(static_cast<int>(l.key_strindex()));
      const std::string& value = s.string_table(static_cast<int>(l.value_strindex()));
      if (static_cast<int64_t>(key.size()) > limits.max_sample_label_key_bytes) {
        return Status::ResourceExhausted(q() + ".key: " + std::to_string(key.size()) +
                                         " bytes (max " +
                                         std::to_string(limits.max_sample_label_key_bytes) + ")");
      }
      if (static_cast<int64_t>(value.size()) > limits.max_sample_label_value_bytes) {
        return Status::ResourceExhausted(q() + ".value: " + std::to_string(value.size()) +
                                         " bytes (max " +
                                         std::to_string(limits.max_sample_label_value_bytes) + ")");
      }
      if (!ValidLabelKey(key)) {
        return Status::InvalidArgument(q() + ".key: \"" + key +
                                       "\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_.]*)");
      }
      if (prev_key != nullptr && !(*prev_key < key)) {
        return Status::InvalidArgument(q() + ".key: \"" + key +
                                       "\" not sorted or repeated (keys sorted, unique)");
      }
      prev_key = &key;
    }
  }
  // 10b. sample sets (heap profiles): known types, each once, samples as in 10.
  std::set<std::string> set_types;
  for (int k = 0; k < s.sample_sets_size(); ++k) {
    const auto& set = s.sample_sets(k);
    const std::string q = Idx("sample_sets", k);
    if (!IsHeapSampleType(set.type())) {
      return Status::InvalidArgument(q + ".type: \"" + set.type() +
                                     "\" is not alloc_objects, alloc_space, inuse_objects or "
                                     "inuse_space");
    }
    if (!set_types.insert(set.type()).second) {
      return Status::InvalidArgument(q + ".type: duplicate \"" + set.type() + "\"");
    }
    for (int i = 0; i < set.samples_size(); ++i) {
      const auto& smp = set.samples(i);
      const auto p = [&q, i] { return q + Idx(".samples", i); };
      if (smp.stack_index() >= static_cast<uint32_t>(s.stacks_size())) {
        return OutOfRange(p() + ".stack_index", smp.stack_index(), s.stacks_size(), "stacks");
      }
      if (smp.count() <= 0) {
        return Status::InvalidArgument(p() + ".count: " + std::to_string(smp.count()) +
                                       " (must be > 0)");
      }
      if (smp.thread_index() > static_cast<uint32_t>(s.threads_size())) {
        return OutOfRange(p() + ".thread_index", smp.thread_index(), s.threads_size(), "threads");
      }
    }
  }
  // 11. labels
  if (s.labels_size() > limits.max_labels) {
    return Status::ResourceExhausted("labels: " + std::to_string(s.labels_size()) + " (max " +
                                     std::to_string(limits.max_labels) + ")");
  }
  std::set<std::string> keys;
  for (int i = 0; i < s.labels_size(); ++i) {
    const auto& l = s.labels(i);
    const std::string p = Idx("labels", i);
    if (static_cast<int64_t>(l.key().size()) > limits.max_label_key_bytes) {
      return Status::ResourceExhausted(p + ".key: " + std::to_string(l.key().size()) +
                                       " bytes (max " + std::to_string(limits.max_label_key_bytes) +
                                       ")");
    }
    if (static_cast<int64_t>(l.value().size()) > limits.max_label_value_bytes) {
      return Status::ResourceExhausted(p + ".value: " + std::to_string(l.value().size()) +
                                       " bytes (max " +
                                       std::to_string(limits.max_label_value_bytes) + ")");
    }
    if (!ValidLabelKey(l.key())) {
      return Status::InvalidArgument(p + ".key: \"" + l.key() +
                                     "\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_.]*)");
    }
    if (l.key() == "service") {
      return Status::InvalidArgument(p + ".key: \"service\" is reserved (set process.service)");
    }
    if (!keys.insert(l.key()).second) {
      return Status::InvalidArgument(p + ".key: duplicate \"" + l.key() + "\"");
    }
  }
  // 12. counters
  const auto& c = s.counters();
  const int64_t counters[] = {c.samples_dropped_ring_full(),    c.unwind_failures(),
                              c.truncated_stacks(),             c.timers_failed(),
                              c.summaries_dropped_spool_full(), c.samples_dropped_spool_full(),
                              c.reentrant_signals(),            c.stacks_dropped_limit(),
                              c.summaries_rejected(),           c.agent_reconnects(),
                              c.samples_lost_agent_restart(),   c.messages_dropped(),
                              c.modules_rejected(),
                              c.heap_samples_dropped_ring_full(),
                              c.heap_samples_untracked_table_full(),
                              c.heap_samples_dropped_no_thread()};
  for (int64_t v : counters) {
    if (v < 0) return Status::InvalidArgument("counters: negative value " + std::to_string(v));
  }
  return Status::OK();
}

}  // namespace stackstream
