// SummaryBuilder: dedup, counts, threads, bounds, validation; OfflineWriter:
// the pprof file decodes (through the project's converter and encoder).
#include "pipeline/summary_builder.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "format/validate.h"
#include "pipeline/offline_writer.h"
#include "pipeline/process_identity.h"
#include "capture/module_scan.h"
#include "test_lib.h"
#include "unwind/module_set.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

// The modules loaded now, as the host sends them.
std::vector<std::string> ScanMessages() {
  std::vector<std::string> messages;
  capture::ScanModules(
      1,
      [](const capture::ModuleMessage& m, const char* path, void* arg) {
        std::string raw(reinterpret_cast<const char*>(&m), sizeof m);
        raw.append(path);
        raw.push_back('\0');
        static_cast<std::vector<std::string>*>(arg)->push_back(raw);
      },
      &messages);
  return messages;
}

class SummaryBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static TestLib* lib = [] {
      auto* l = new TestLib();
      EXPECT_TRUE(l->Load(PIPELINE_TESTLIB));
      return l;
    }();
    lib_ = lib;
    int line = 0, call_line = 0;
    lib_->hot(&hot_pc_, &line);
    lib_->inlined(&inline_pc_, &line, &call_line);
    Config config;
    config.service = "builder-test";
    config.labels = {{"env", "test"}, {"bad key", "x"}, {"service", "ignored"}};
    identity_ = MakeProcessIdentity(config, getpid(), "/proc/self/exe", "");
    labels_ = MakeLabels(config, identity_.host());
    modules_ = ModuleSet::FromMessages(ScanMessages(), "");
  }

  std::unique_ptr<SummaryBuilder> NewBuilder(SummaryBuilder::Options options = {}) {
    auto b = std::make_unique<SummaryBuilder>(identity_, labels_, v1::SAMPLING_MODE_CPU, 10000000,
                                              &symbolizer_, &threads_, options);
    b->StartWindow(1700000000000000000LL);
    return b;
  }

  void Add(SummaryBuilder* b, std::vector<uint64_t> pcs, int32_t tid, uint32_t weight = 1,
           bool truncated = false, const ModuleSet* modules = nullptr,
           const std::vector<SampleLabel>& labels = {}) {
    RawSample s;
    s.labels = labels.data();
    s.label_count = static_cast<uint32_t>(labels.size());
    s.modules = modules != nullptr ? modules : modules_.get();
    s.pcs = pcs.data();
    s.depth = static_cast<uint32_t>(pcs.size());
    s.tid = tid;
    s.weight = weight;
    s.truncated = truncated;
    s.timestamp_ns = 1700000000000000001LL;
    b->Add(s);
  }

  static int64_t Total(const v1::StackSummary& s) {
    int64_t total = 0;
    for (const auto& x : s.samples()) total += x.count();
    return total;
  }

  TestLib* lib_ = nullptr;
  uint64_t hot_pc_ = 0, inline_pc_ = 0;
  v1::ProcessIdentity identity_;
  std::vector<v1::Label> labels_;
  std::shared_ptr<const ModuleSet> modules_;
  Symbolizer symbolizer_;
  ThreadNames threads_{getpid()};
};

TEST_F(SummaryBuilderTest, DedupsStacksCountsAndValidates) {
  auto b = NewBuilder();
  // Return addresses: +1 so that pc-1 lands in the function.
  uint64_t ret = hot_pc_ + 1;
  int32_t tid = gettid();
  for (int i = 0; i < 5; ++i) Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid);
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid, /*weight=*/3);
  Add(b.get(), {inline_pc_, ret}, tid);
  Add(b.get(), {inline_pc_, ret}, tid + 1000000);  // another (unknown) thread
  EXPECT_EQ(10, b->window_samples());
  v1::Counters counters;
  counters.set_samples_dropped_ring_full(7);
  v1::StackSummary s;
  b->Finish(counters, 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_EQ(1u, s.schema_version());
  EXPECT_EQ("builder-test", s.process().service());
  EXPECT_EQ(32u, s.process().agent_instance_id().size());
  EXPECT_EQ(getpid(), s.process().pid());
  EXPECT_EQ(1700000000000000000LL, s.start_time_unix_nanos());
  EXPECT_EQ(1700000001000000000LL, s.end_time_unix_nanos());
  EXPECT_EQ(10000000, s.period_nanos());
  EXPECT_EQ(2, s.stacks_size());
  EXPECT_EQ(3, s.samples_size());  // (stack0,t), (stack1,t), (stack1,t2)
  EXPECT_EQ(10, Total(s));
  EXPECT_EQ(7, s.counters().samples_dropped_ring_full());
  EXPECT_EQ(2, s.threads_size());
  // Labels: sorted, "service" and the invalid key left out, host added.
  std::vector<std::string> keys;
  for (const auto& l : s.labels()) keys.push_back(l.key());
  EXPECT_EQ((std::vector<std::string>{"env", "host"}), keys);
  // The inlined location has two lines, callee first.
  bool saw_inline = false;
  for (const auto& loc : s.locations()) {
    if (loc.lines_size() == 2) {
      saw_inline = true;
      EXPECT_EQ("pipeline_test::InlinedCallee(int)",
                s.string_table(s.functions(loc.lines(0).function_index()).name_strindex()));
    }
  }
  EXPECT_TRUE(saw_inline);
  // Next window starts where this one ended, empty.
  v1::StackSummary next;
  b->Finish(v1::Counters(), 1700000002000000000LL, &next);
  EXPECT_EQ(1700000001000000000LL, next.start_time_unix_nanos());
  EXPECT_EQ(0, next.samples_size());
  EXPECT_TRUE(ValidateSummary(next).ok()) << ValidateSummary(next).ToString();
}

TEST_F(SummaryBuilderTest, SampleLabelsMakeDistinctSortedBoundedSamples) {
  SummaryBuilder::Options options;
  options.max_label_sets = 2;
  auto b = NewBuilder(options);
  const int32_t tid = gettid();
  const std::vector<SampleLabel> a = {{"span_name", "A"}, {"span_id", "a1"}};  // unsorted
  const std::vector<SampleLabel> c = {{"span_id", "c1"}};
  Add(b.get(), {hot_pc_}, tid, 1, false, nullptr, a);
  Add(b.get(), {hot_pc_}, tid, 2, false, nullptr, c);
  Add(b.get(), {hot_pc_}, tid, 4);
  Add(b.get(), {hot_pc_}, tid, 8, false, nullptr, a);
  // A third set is over the bound: its samples keep their stack, no labels
  // and no strings.
  Add(b.get(), {hot_pc_}, tid, 16, false, nullptr, {{"span_id", "d1-unseen"}});
  v1::StackSummary s;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_EQ(31, Total(s));
  std::map<std::string, int64_t> by_labels;  // "k=v,k=v" -> count
  for (const auto& x : s.samples()) {
    std::string key;
    for (const auto& l : x.labels()) {
      key += (key.empty() ? "" : ",") + s.string_table(l.key_strindex()) + "=" +
             s.string_table(l.value_strindex());
    }
    by_labels[key] += x.count();
  }
  EXPECT_EQ(by_labels, (std::map<std::string, int64_t>{
                           {"", 20}, {"span_id=a1,span_name=A", 9}, {"span_id=c1", 2}}));
  for (const auto& str : s.string_table()) EXPECT_NE(str, "d1-unseen");
}

TEST_F(SummaryBuilderTest, DistinctStacksAreBoundedAndCounted) {
  SummaryBuilder::Options options;
  options.max_stacks = 100;
  options.reserve_stacks = 10;
  auto b = NewBuilder(options);
  // 1000 distinct stacks, 20 distinct leaves.
  for (int i = 0; i < 1000; ++i) {
    Add(b.get(), {hot_pc_ + (i % 20), hot_pc_ + 1000 + i, hot_pc_ + 5000}, 1, 2);
  }
  v1::StackSummary s;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_LE(s.stacks_size(), 110);
  EXPECT_EQ(2 * 900, s.counters().stacks_dropped_limit());
  // Leaf-only stacks for 10 leaves fit the reserve; the other 10 leaves' samples
  // beyond the bound are dropped.
  int64_t kept = Total(s);
  EXPECT_GE(kept, 2 * 100);
  EXPECT_LT(kept, 2 * 1000);
  int truncated = 0;
  for (const auto& st : s.stacks()) truncated += st.truncated() ? 1 : 0;
  EXPECT_EQ(10, truncated);
}

TEST_F(SummaryBuilderTest, GenerationsShareMappingsLocationsAndStacks) {
  // Two generations of the same process: the sets are rebuilt objects with
  // the same modules; a third process-like set has the library elsewhere.
  auto gen2 = ModuleSet::FromMessages(ScanMessages(), "");
  ASSERT_NE(modules_->serial(), gen2->serial());
  auto b = NewBuilder();
  int32_t tid = gettid();
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid);
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid, 1, false, gen2.get());
  Add(b.get(), {inline_pc_, hot_pc_ + 1}, tid, 1, false, gen2.get());
  // A set without the library: the same addresses are unknown there.
  std::vector<std::string> without;
  for (const std::string& m : ScanMessages()) {
    if (m.find(PIPELINE_TESTLIB) == std::string::npos) without.push_back(m);
  }
  auto gone = ModuleSet::FromMessages(without, "");
  ASSERT_EQ(nullptr, gone->Find(hot_pc_));
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, tid, 1, false, gone.get());
  v1::StackSummary s;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s);
  ASSERT_TRUE(ValidateSummary(s).ok()) << ValidateSummary(s).ToString();
  EXPECT_EQ(4, Total(s));
  // One stack for both generations, one for the other order, one unknown.
  EXPECT_EQ(3, s.stacks_size());
  int lib_mappings = 0, unknown_mappings = 0;
  for (const auto& m : s.mappings()) {
    lib_mappings += s.string_table(m.path_strindex()) == PIPELINE_TESTLIB;
    unknown_mappings += s.string_table(m.path_strindex()) == "[unknown]";
  }
  EXPECT_EQ(1, lib_mappings);
  EXPECT_EQ(1, unknown_mappings);
  EXPECT_EQ(2, s.mappings_size());
  // hot, inline+1-1 in the library; the same two addresses unknown.
  EXPECT_EQ(4, s.locations_size());
  bool hot = false;
  for (const auto& st : s.stacks()) {
    const auto& leaf = s.locations(st.location_indexes(0));
    const auto& fn = s.functions(leaf.lines(0).function_index());
    hot |= s.string_table(fn.name_strindex()) == "pipeline_test::HotFunction(int)";
  }
  EXPECT_TRUE(hot);
}

TEST(ThreadNamesTest, NamesOfAnotherProcessOutliveTheThread) {
  // A child process names a thread and reports its tid; names are read from
  // /proc/PID/task/TID/comm while it lives and stay known after it exits.
  int to_parent[2], to_child[2];
  ASSERT_EQ(0, pipe(to_parent));
  ASSERT_EQ(0, pipe(to_child));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    pthread_setname_np(pthread_self(), "ss-named-main");
    int32_t tid = gettid();
    if (write(to_parent[1], &tid, sizeof tid) != sizeof tid) _exit(2);
    char c;
    if (read(to_child[0], &c, 1) != 1) _exit(3);  // until the parent has read it
    _exit(0);
  }
  int32_t tid = 0;
  ASSERT_EQ(static_cast<ssize_t>(sizeof tid), read(to_parent[0], &tid, sizeof tid));
  ThreadNames names(pid);
  EXPECT_EQ("ss-named-main", names.Get(tid));
  ASSERT_EQ(1, write(to_child[1], "x", 1));
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  EXPECT_EQ("ss-named-main", names.Get(tid, /*refresh=*/true));
  EXPECT_EQ("", names.Get(tid + 123456));
  ThreadNames mine(getpid());
  EXPECT_FALSE(mine.Get(gettid()).empty());
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) close(fd);
}

TEST_F(SummaryBuilderTest, OfflineWriterFileDecodes) {
  auto b = NewBuilder();
  for (int i = 0; i < 4; ++i) Add(b.get(), {hot_pc_, inline_pc_ + 1}, 1);
  v1::StackSummary s1, s2;
  b->Finish(v1::Counters(), 1700000001000000000LL, &s1);
  Add(b.get(), {hot_pc_, inline_pc_ + 1}, 1, 6);
  b->Finish(v1::Counters(), 1700000002000000000LL, &s2);
  std::string path = ::testing::TempDir() + "/offline_writer_test.pb.gz";
  OfflineWriter writer(path);
  writer.Add(s1);
  ASSERT_TRUE(writer.Write().ok());
  writer.Add(s2);
  ASSERT_TRUE(writer.Write().ok());
  EXPECT_EQ(10, writer.total_samples());
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string gz = ss.str();
  ASSERT_GT(gz.size(), 20u);
  EXPECT_EQ('\x1f', gz[0]);
  EXPECT_EQ('\x8b', gz[1]);
  // The file is exactly the project's encoder applied to the merged summaries.
  ProfileBuilder pb;
  AddSummaryToProfile(s1, &pb);
  AddSummaryToProfile(s2, &pb);
  Profile p = pb.Release();
  EXPECT_EQ(10, p.TotalCount());
  bool hot = false;
  for (const auto& f : p.frames) {
    if (f.function == "pipeline_test::HotFunction(int)") {
      hot = true;
      EXPECT_NE(std::string::npos, f.file.find("symbolizer_testlib.cc"));
      EXPECT_GT(f.line, 0);
    }
  }
  EXPECT_TRUE(hot);
  // Decompress and compare with EncodePprof of the same profile.
  std::string raw(1 << 20, '\0');
  z_stream zs = {};
  ASSERT_EQ(Z_OK, inflateInit2(&zs, 15 + 32));
  zs.next_in = reinterpret_cast<Bytef*>(&gz[0]);
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(&raw[0]);
  zs.avail_out = static_cast<uInt>(raw.size());
  ASSERT_EQ(Z_STREAM_END, inflate(&zs, Z_FINISH));
  raw.resize(zs.total_out);
  inflateEnd(&zs);
  p.start_unix_nanos = s1.start_time_unix_nanos();
  p.end_unix_nanos = s2.end_time_unix_nanos();
  EXPECT_EQ(EncodePprof(p), raw);
  unlink(path.c_str());
}


}  // namespace
}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
