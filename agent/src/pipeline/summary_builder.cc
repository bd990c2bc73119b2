#include "pipeline/summary_builder.h"

#include <algorithm>
#include <utility>

#include "format/profile.h"
#include "unwind/module_set.h"

namespace stackstream {
namespace agent {
namespace pipeline {

size_t SummaryBuilder::KeyHash::operator()(const std::vector<uint64_t>& v) const {
  uint64_t h = 0xcbf29ce484222325ULL ^ v.size();
  for (uint64_t x : v) {
    h ^= x;
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return static_cast<size_t>(h);
}

SummaryBuilder::SummaryBuilder(v1::ProcessIdentity identity, std::vector<v1::Label> labels,
                               v1::SamplingMode mode, int64_t period_nanos,
                               Symbolizer* symbolizer, ThreadNames* thread_names, Options options)
    : identity_(std::move(identity)),
      labels_(std::move(labels)),
      mode_(mode),
      period_nanos_(period_nanos),
      symbolizer_(symbolizer),
      thread_names_(thread_names),
      options_(options) {
  Reset();
}

void SummaryBuilder::StartWindow(int64_t start_ns) { window_start_ns_ = start_ns; }

void SummaryBuilder::Reset() {
  current_.Clear();
  strings_.clear();
  set_locations_.clear();
  locations_.clear();
  mappings_.clear();
  stacks_by_locations_.clear();
  functions_.clear();
  stack_index_.clear();
  threads_.clear();
  counts_.clear();
  labeled_counts_.clear();
  label_sets_.clear();
  label_set_by_id_.clear();
  heap_counts_.clear();
  window_samples_ = 0;
  stacks_dropped_limit_ = 0;
  leaf_only_stacks_ = 0;
  InternString("");
}

uint32_t SummaryBuilder::InternString(const std::string& s) {
  auto it = strings_.find(s);
  if (it != strings_.end()) return it->second;
  uint32_t index = static_cast<uint32_t>(current_.string_table_size());
  current_.add_string_table(s);
  strings_.emplace(s, index);
  return index;
}

uint32_t SummaryBuilder::InternMapping(const Module* module) {
  // By identity: every generation's ModuleSet has its own Module objects.
  std::string key;
  if (module != nullptr) {
    key.reserve(module->path.size() + module->build_id.size() + 24);
    key.append(module->path).push_back('\0');
    key.append(module->build_id).push_back('\0');
    key.append(std::to_string(module->start));
  } else {
    key = "\1unknown";
  }
  auto it = mappings_.find(key);
  if (it != mappings_.end()) return it->second;
  uint32_t index = static_cast<uint32_t>(current_.mappings_size());
  v1::Mapping* m = current_.add_mappings();
  if (module != nullptr) {
    m->set_memory_start(module->start);
    m->set_memory_limit(module->end);
    m->set_file_offset(module->file_offset);
    m->set_path_strindex(InternString(module->path));
    m->set_build_id(module->build_id);
  } else {
    m->set_path_strindex(InternString("[unknown]"));
  }
  mappings_.emplace(std::move(key), index);
  return index;
}

uint32_t SummaryBuilder::InternLocation(const ModuleSet& modules, uint64_t address) {
  const std::pair<uint64_t, uint64_t> set_key{modules.serial(), address};
  auto it = set_locations_.find(set_key);
  if (it != set_locations_.end()) return it->second;
  std::shared_ptr<const SymbolizedPc> pc = symbolizer_->Symbolize(modules, address);
  uint32_t mapping = InternMapping(pc->module.get());
  const std::pair<uint64_t, uint64_t> key{mapping, address};
  auto known = locations_.find(key);
  if (known != locations_.end()) {  // the same module in another generation's set
    set_locations_.emplace(set_key, known->second);
    return known->second;
  }
  uint32_t index = static_cast<uint32_t>(current_.locations_size());
  v1::Location* loc = current_.add_locations();
  loc->set_mapping_index(mapping);
  loc->set_file_offset(pc->file_offset);
  std::string fkey;
  for (const SymbolizedFrame& f : pc->frames) {
    fkey.clear();
    fkey.append(f.function).push_back('\0');
    fkey.append(f.system_name).push_back('\0');
    fkey.append(f.file);
    auto fit = functions_.find(fkey);
    uint32_t function_index;
    if (fit != functions_.end()) {
      function_index = fit->second;
    } else {
      function_index = static_cast<uint32_t>(current_.functions_size());
      v1::Function* fn = current_.add_functions();
      fn->set_name_strindex(InternString(f.function));
      if (!f.system_name.empty()) fn->set_system_name_strindex(InternString(f.system_name));
      if (!f.file.empty()) fn->set_filename_strindex(InternString(f.file));
      fn->set_start_line(f.start_line);
      functions_.emplace(fkey, function_index);
    }
    v1::Line* line = loc->add_lines();
    line->set_function_index(function_index);
    line->set_line(f.line);
  }
  locations_.emplace(key, index);
  set_locations_.emplace(set_key, index);
  return index;
}

uint32_t SummaryBuilder::ThreadIndex(int32_t tid) {
  if (!options_.keep_threads) return 0;
  auto it = threads_.find(tid);
  if (it != threads_.end()) return it->second;
  if (threads_.size() >= options_.max_threads) return 0;
  v1::ThreadInfo* t = current_.add_threads();
  t->set_tid(tid);
  // Re-read once per window: threads may rename themselves.
  t->set_name_strindex(InternString(thread_names_->Get(tid, /*refresh=*/true)));
  uint32_t index = static_cast<uint32_t>(current_.threads_size());
  threads_.emplace(tid, index);
  return index;
}

uint32_t SummaryBuilder::AddStack(const ModuleSet& modules, const uint64_t* pcs, uint32_t depth,
                                  bool truncated) {
  loc_key_.clear();
  for (uint32_t i = 0; i < depth; ++i) {
    // Return addresses point after the call: look up the call instruction.
    uint64_t address = i == 0 ? pcs[i] : pcs[i] - 1;
    loc_key_.push_back(InternLocation(modules, address));
  }
  loc_key_.push_back(truncated ? 1 : 0);
  uint32_t index;
  auto it = stacks_by_locations_.find(loc_key_);
  if (it != stacks_by_locations_.end()) {
    index = it->second;  // the same stack, seen through another generation's set
  } else {
    index = static_cast<uint32_t>(current_.stacks_size());
    v1::Stack* stack = current_.add_stacks();
    stack->set_truncated(truncated);
    for (size_t i = 0; i + 1 < loc_key_.size(); ++i) {
      stack->add_location_indexes(static_cast<uint32_t>(loc_key_[i]));
    }
    stacks_by_locations_.emplace(loc_key_, index);
  }
  stack_index_.emplace(key_, index);
  return index;
}

void SummaryBuilder::Add(const RawSample& sample) {
  if (sample.depth == 0 || sample.pcs == nullptr) return;
  static const std::shared_ptr<const ModuleSet> kNoModules = ModuleSet::FromMessages({}, "");
  const ModuleSet& modules = sample.modules != nullptr ? *sample.modules : *kNoModules;
  const int64_t weight = sample.weight > 0 ? sample.weight : 1;
  key_.clear();
  key_.push_back(modules.serial());
  key_.insert(key_.end(), sample.pcs, sample.pcs + sample.depth);
  key_.push_back(sample.truncated ? 1 : 0);
  uint32_t stack;
  auto it = stack_index_.find(key_);
  if (it != stack_index_.end()) {
    stack = it->second;
  } else if (static_cast<size_t>(current_.stacks_size()) - leaf_only_stacks_ < options_.max_stacks) {
    stack = AddStack(modules, sample.pcs, sample.depth, sample.truncated);
  } else {
    // Over the bound: keep the leaf alone, if there is room for that.
    stacks_dropped_limit_ += weight;
    key_.resize(2);
    key_[1] = sample.pcs[0];
    key_.push_back(2);  // distinct from any full stack of depth 1
    auto leaf = stack_index_.find(key_);
    if (leaf != stack_index_.end()) {
      stack = leaf->second;
    } else if (leaf_only_stacks_ < options_.reserve_stacks) {
      int before = current_.stacks_size();
      stack = AddStack(modules, sample.pcs, 1, /*truncated=*/true);
      if (current_.stacks_size() > before) ++leaf_only_stacks_;
    } else {
      return;
    }
  }
  uint64_t key = (static_cast<uint64_t>(stack) << 32) | ThreadIndex(sample.tid);
  switch (sample.kind) {
    case SampleKind::kClock: {
      window_samples_ += weight;
      if (sample.label_count > 0 && sample.labels != nullptr) {
        // Over the bound of label sets only an existing set is used, and no
        // string is added for one that cannot exist.
        const bool full = label_sets_.size() >= options_.max_label_sets;
        auto index = [&](const std::string& str, uint32_t* out) {
          if (!full) {
            *out = InternString(str);
            return true;
          }
          auto found = strings_.find(str);
          if (found == strings_.end()) return false;
          *out = found->second;
          return true;
        };
        label_scratch_.clear();
        bool known = true;
        for (uint32_t i = 0; i < sample.label_count && known; ++i) {
          uint32_t v = 0;
          known = index(sample.labels[i].value, &v);
          label_scratch_.emplace_back(sample.labels[i].key, v);
        }
        std::sort(label_scratch_.begin(), label_scratch_.end());
        std::vector<std::pair<uint32_t, uint32_t>> set;
        for (const auto& [k, v] : label_scratch_) {
          if (!known) break;
          if (!set.empty() && current_.string_table(static_cast<int>(set.back().first)) == k) {
            continue;  // keys unique
          }
          uint32_t key_index = 0;
          known = index(k, &key_index);
          set.emplace_back(key_index, v);
        }
        auto it = known ? label_sets_.find(set) : label_sets_.end();
        if (known && it == label_sets_.end() && !full) {
          it = label_sets_.emplace(std::move(set), static_cast<uint32_t>(label_sets_.size())).first;
          label_set_by_id_.push_back(&it->first);
        }
        if (it != label_sets_.end()) {
          labeled_counts_[{key, it->second}] += weight;
          break;
        }
      }
      counts_[key] += weight;
      break;
    }
    case SampleKind::kAlloc: {
      auto& v = heap_counts_[key];
      v[0] += sample.heap_objects;
      v[1] += sample.heap_bytes;
      window_samples_ += 1;
      break;
    }
    case SampleKind::kInuse: {
      auto& v = heap_counts_[key];
      v[2] += sample.heap_objects;
      v[3] += sample.heap_bytes;
      break;
    }
  }
}

void SummaryBuilder::Finish(const v1::Counters& counters, int64_t end_ns,
                            v1::StackSummary* summary) {
  summary->Clear();
  summary->Swap(&current_);
  summary->set_schema_version(1);
  *summary->mutable_process() = identity_;
  for (const v1::Label& l : labels_) *summary->add_labels() = l;
  int64_t start = window_start_ns_ > 0 ? window_start_ns_ : end_ns;
  if (end_ns < start) end_ns = start;
  summary->set_start_time_unix_nanos(start);
  summary->set_end_time_unix_nanos(end_ns);
  summary->set_mode(mode_);
  summary->set_period_nanos(period_nanos_);
  // Sorted by stack, then thread: deterministic and compresses better.
  std::vector<std::pair<uint64_t, int64_t>> sorted(counts_.begin(), counts_.end());
  std::sort(sorted.begin(), sorted.end());
  summary->mutable_samples()->Reserve(static_cast<int>(sorted.size()));
  for (const auto& [key, count] : sorted) {
    v1::Sample* s = summary->add_samples();
    s->set_stack_index(static_cast<uint32_t>(key >> 32));
    s->set_count(count);
    s->set_thread_index(static_cast<uint32_t>(key & 0xffffffffu));
  }
  for (const auto& [key, count] : labeled_counts_) {
    v1::Sample* s = summary->add_samples();
    s->set_stack_index(static_cast<uint32_t>(key.first >> 32));
    s->set_count(count);
    s->set_thread_index(static_cast<uint32_t>(key.first & 0xffffffffu));
    for (const auto& [k, v] : *label_set_by_id_[key.second]) {
      v1::SampleLabel* l = s->add_labels();
      l->set_key_strindex(k);
      l->set_value_strindex(v);
    }
  }
  if (heap_) {
    std::vector<std::pair<uint64_t, std::array<int64_t, 4>>> heap(heap_counts_.begin(),
                                                                  heap_counts_.end());
    std::sort(heap.begin(), heap.end());
    for (int t = 0; t < 4; ++t) {
      v1::SampleSet* set = summary->add_sample_sets();
      set->set_type(kHeapSampleTypes[t]);
      set->set_unit(SampleTypeUnit(kHeapSampleTypes[t]));
      for (const auto& [key, values] : heap) {
        if (values[t] <= 0) continue;
        v1::Sample* s = set->add_samples();
        s->set_stack_index(static_cast<uint32_t>(key >> 32));
        s->set_count(values[t]);
        s->set_thread_index(static_cast<uint32_t>(key & 0xffffffffu));
      }
    }
  }
  *summary->mutable_counters() = counters;
  summary->mutable_counters()->set_stacks_dropped_limit(counters.stacks_dropped_limit() +
                                                        stacks_dropped_limit_);
  Reset();
  window_start_ns_ = end_ns;
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
