// Exporters on hand-built Profiles: folded, speedscope, Grafana flame-graph
// rows, Pyroscope levels (single, diff, tree bytes), DOT, top, diff, max-nodes
// truncation and call-site selection.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "export/call_site.h"
#include "export/diff.h"
#include "export/dot.h"
#include "export/flamegraph.h"
#include "export/folded.h"
#include "export/max_nodes.h"
#include "export/speedscope.h"
#include "export/top.h"
#include "profile_fixture.h"

namespace stackstream {
namespace exporter {
namespace {

using testing::MakeProfile;
using testing::Stack;

Profile Example() {  // formats.md's worked example
  return MakeProfile({{"main;foo;bar", 3}, {"main;foo", 1}, {"main;baz", 2}});
}

// ---- folded ----------------------------------------------------------------

TEST(FoldedTest, ExactLinesSortedRootFirst) {
  EXPECT_EQ(ExportFolded(Example()), "main;baz 2\nmain;foo 1\nmain;foo;bar 3\n");
}

TEST(FoldedTest, EmptyProfileIsEmpty) { EXPECT_EQ(ExportFolded(Profile()), ""); }

TEST(FoldedTest, SanitizesSeparatorsAndMergesStacksThatBecomeEqual) {
  Profile p = MakeProfile({{"main;a", 1}, {"main;b", 2}});
  // Rename "a" and "b" so that both sanitize to "x:y z".
  for (Frame& f : p.frames) {
    if (f.function == "a") f.function = "x;y\nz";
    if (f.function == "b") f.function = "x:y\rz";
  }
  EXPECT_EQ(ExportFolded(p), "main;x:y z 3\n");
}

TEST(FoldedTest, SanitizeFrame) {
  EXPECT_EQ(SanitizeFoldedFrame(""), "[unknown]");
  EXPECT_EQ(SanitizeFoldedFrame("a;b"), "a:b");
  EXPECT_EQ(SanitizeFoldedFrame("a\tb\nc"), "a b c");
  EXPECT_EQ(SanitizeFoldedFrame("std::vector<int> f(int, char)"), "std::vector<int> f(int, char)");
  EXPECT_EQ(SanitizeFoldedFrame(std::string(5000, 'x')).size(), kMaxFoldedFrameBytes);
}

TEST(FoldedTest, TruncatedStackGetsMarkerRootAndSkipsZeroCounts) {
  Profile p = MakeProfile({{"f;g", 4, true}, {"main;h", 1}});
  p.samples.push_back(ProfileSample{{0}, 0, false});  // count 0: skipped
  EXPECT_EQ(ExportFolded(p), "[truncated];f;g 4\nmain;h 1\n");
}

TEST(FoldedTest, LinesMatchFlamegraphPlAndSpeedscopeRegexes) {
  Profile p = MakeProfile({{"main;operator new(unsigned long);x 12", 7}, {"a b;c  d", 1}});
  std::string folded = ExportFolded(p);
  std::regex flamegraph_pl(R"(^(.*)\s+?(\d+(?:\.\d*)?)$)");
  std::regex speedscope(R"(^(.*) (\d+)$)");
  std::stringstream ss(folded);
  std::string line;
  int n = 0;
  int64_t sum = 0;
  while (std::getline(ss, line)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, flamegraph_pl)) << line;
    ASSERT_TRUE(std::regex_match(line, m, speedscope)) << line;
    sum += std::stoll(m[2]);
    ++n;
  }
  EXPECT_EQ(n, 2);
  EXPECT_EQ(sum, 8);
}

TEST(FoldedTest, VeryDeepStackStaysUnder64KiB) {
  std::string deep = "main";
  for (int i = 0; i < 2000; ++i) deep += ";function_with_a_long_name_" + std::to_string(i);
  std::string folded = ExportFolded(MakeProfile({{deep, 1}}));
  EXPECT_LT(folded.size(), 64u * 1024);
  EXPECT_EQ(folded.rfind("[truncated];", 0), 0u);
  EXPECT_NE(folded.find(";function_with_a_long_name_1999 1\n"), std::string::npos);
}

// ---- speedscope -------------------------------------------------------------

TEST(SpeedscopeTest, FollowsTheSchemaRules) {
  Profile p = Example();
  auto doc = nlohmann::json::parse(ExportSpeedscope(p, "api cpu"));
  EXPECT_EQ(doc["$schema"], "https://www.speedscope.app/file-format-schema.json");
  EXPECT_EQ(doc["activeProfileIndex"], 0);
  const auto& frames = doc["shared"]["frames"];
  ASSERT_EQ(doc["profiles"].size(), 1u);
  const auto& prof = doc["profiles"][0];
  EXPECT_EQ(prof["type"], "sampled");
  EXPECT_EQ(prof["unit"], "nanoseconds");
  EXPECT_EQ(prof["name"], "api cpu");
  ASSERT_EQ(prof["samples"].size(), prof["weights"].size());
  int64_t sum = 0;
  std::map<std::string, int64_t> by_stack;
  for (size_t i = 0; i < prof["samples"].size(); ++i) {
    std::string stack;
    for (const auto& idx : prof["samples"][i]) {
      ASSERT_GE(idx.get<int64_t>(), 0);
      ASSERT_LT(idx.get<size_t>(), frames.size());
      if (!stack.empty()) stack += ";";
      stack += frames[idx.get<size_t>()]["name"].get<std::string>();
    }
    int64_t w = prof["weights"][i];
    EXPECT_GE(w, 0);
    sum += w;
    by_stack[stack] += w;
  }
  EXPECT_EQ(prof["startValue"], 0);
  EXPECT_EQ(prof["endValue"], sum);
  // Root first, weight = count x period (10 ms).
  EXPECT_EQ(by_stack["main;foo;bar"], 30000000);
  EXPECT_EQ(by_stack["main;foo"], 10000000);
  EXPECT_EQ(by_stack["main;baz"], 20000000);
  for (const auto& f : frames) {
    EXPECT_TRUE(f.contains("name"));
    EXPECT_TRUE(f.contains("file"));
    EXPECT_GT(f["line"].get<int64_t>(), 0);
  }
}

TEST(SpeedscopeTest, EmptyProfileIsValidAndInvalidUtf8DoesNotThrow) {
  auto doc = nlohmann::json::parse(ExportSpeedscope(Profile(), ""));
  EXPECT_EQ(doc["profiles"][0]["endValue"], 0);
  EXPECT_EQ(doc["name"], "cpu");
  Profile p = MakeProfile({{"main;x", 1}});
  p.frames[1].function = "bad\xff\xfe";
  EXPECT_NO_THROW(nlohmann::json::parse(ExportSpeedscope(p, "x")));
}

// ---- Grafana flame-graph rows -----------------------------------------------

TEST(FlameGraphTest, MatchesTheWorkedExampleExactly) {
  std::vector<FlameRow> rows = FlameGraphRows(Example());
  std::vector<std::tuple<int64_t, int64_t, int64_t, std::string>> got;
  for (const auto& r : rows) got.emplace_back(r.level, r.value, r.self, r.label);
  std::vector<std::tuple<int64_t, int64_t, int64_t, std::string>> want = {
      {0, 6, 0, "total"}, {1, 6, 0, "main"}, {2, 4, 1, "foo"}, {3, 3, 3, "bar"}, {2, 2, 2, "baz"}};
  EXPECT_EQ(got, want);
}

TEST(FlameGraphTest, ByNameOrderAndPreOrderInvariants) {
  Profile p = MakeProfile({{"main;b;x", 1}, {"main;a", 5}, {"main;b;y", 2}, {"other", 1}});
  std::vector<FlameRow> rows = FlameGraphRows(p, CallTree::Order::kByName);
  std::vector<std::string> labels;
  for (const auto& r : rows) labels.push_back(r.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"total", "main", "a", "b", "x", "y", "other"}));
  // Each level change is +1 (descend) or a return to an ancestor level; a
  // node's value is its self plus its children's values.
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_LE(rows[i].level, rows[i - 1].level + 1);
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t children = 0;
    for (size_t j = i + 1; j < rows.size() && rows[j].level > rows[i].level; ++j) {
      if (rows[j].level == rows[i].level + 1) children += rows[j].value;
    }
    EXPECT_EQ(rows[i].value, rows[i].self + children) << rows[i].label;
  }
}

TEST(FlameGraphTest, DataFrameJson) {
  auto doc = nlohmann::json::parse(FlameGraphFrameJson(FlameGraphRows(Example()), 10, "ns"));
  const auto& fields = doc["schema"]["fields"];
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0]["name"], "level");
  EXPECT_EQ(fields[1]["name"], "value");
  EXPECT_EQ(fields[1]["config"]["unit"], "ns");
  EXPECT_EQ(fields[2]["name"], "self");
  EXPECT_EQ(fields[3]["name"], "label");
  EXPECT_EQ(fields[3]["type"], "string");
  const auto& values = doc["data"]["values"];
  EXPECT_EQ(values[0], nlohmann::json({0, 1, 2, 3, 2}));
  EXPECT_EQ(values[1], nlohmann::json({60, 60, 40, 30, 20}));
  EXPECT_EQ(values[2], nlohmann::json({0, 0, 10, 30, 20}));
  EXPECT_EQ(values[3], nlohmann::json({"total", "main", "foo", "bar", "baz"}));
}

// ---- Pyroscope levels ---------------------------------------------------------

// Decodes levels back into (level, start, total, self, name) to check them.
struct Node {
  int64_t level, start, total, self;
  std::string name;
};
std::vector<Node> Decode(const PyroscopeFlameGraph& fg) {
  std::vector<Node> out;
  for (size_t l = 0; l < fg.levels.size(); ++l) {
    const auto& v = fg.levels[l];
    EXPECT_EQ(v.size() % 4, 0u);
    int64_t x = 0;
    for (size_t i = 0; i + 3 < v.size(); i += 4) {
      x += v[i];
      out.push_back({static_cast<int64_t>(l), x, v[i + 1], v[i + 2], fg.names.at(v[i + 3])});
      x += v[i + 1];
    }
  }
  return out;
}

TEST(PyroscopeLevelsTest, EncodesTheExample) {
  PyroscopeFlameGraph fg = BuildPyroscopeFlameGraph(Example(), 0, 1);
  EXPECT_EQ(fg.names[0], "total");
  EXPECT_EQ(fg.total, 6);
  EXPECT_EQ(fg.max_self, 3);
  ASSERT_EQ(fg.levels.size(), 4u);
  EXPECT_EQ(fg.levels[0], (std::vector<int64_t>{0, 6, 0, 0}));
  // Level 2 in name order: baz [0,2) then foo [2,6).
  auto nodes = Decode(fg);
  std::map<std::string, Node> by_name;
  for (const auto& n : nodes) by_name[n.name] = n;
  EXPECT_EQ(by_name["baz"].start, 0);
  EXPECT_EQ(by_name["baz"].total, 2);
  EXPECT_EQ(by_name["foo"].start, 2);
  EXPECT_EQ(by_name["foo"].self, 1);
  EXPECT_EQ(by_name["bar"].start, 2);
  EXPECT_EQ(by_name["bar"].level, 3);
  ASSERT_EQ(fg.levels[3].size(), 4u);
  EXPECT_EQ(fg.levels[3][0], 2);  // x_delta: bar starts 2 after the level's start
  EXPECT_EQ(fg.names.at(fg.levels[3][3]), "bar");
}

TEST(PyroscopeLevelsTest, ChildrenLieInsideParentsAndMaxNodesFoldsIntoOther) {
  std::vector<Stack> stacks;
  for (int i = 0; i < 50; ++i) stacks.push_back({"main;f" + std::to_string(i), i + 1});
  Profile p = MakeProfile(stacks);
  PyroscopeFlameGraph fg = BuildPyroscopeFlameGraph(p, 10, 2);
  auto nodes = Decode(fg);
  // The root "total", the 10 largest nodes below it (main and 9 f's), one "other".
  EXPECT_EQ(nodes.size(), 12u);
  int64_t level2 = 0;
  bool other = false;
  for (const auto& n : nodes) {
    if (n.level == 2) {
      level2 += n.total;
      EXPECT_GE(n.start, 0);
      EXPECT_LE(n.start + n.total, fg.total);
      other = other || n.name == "other";
    }
  }
  EXPECT_TRUE(other);
  EXPECT_EQ(level2, fg.total);  // everything under main accounted for
  EXPECT_EQ(fg.total, 2 * 50 * 51 / 2);
}

// ---- top ------------------------------------------------------------------------

TEST(TopTest, SelfTotalAndPercentages) {
  std::vector<TopRow> rows = Top(Example());
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].function, "bar");
  EXPECT_EQ(rows[0].self, 3);
  EXPECT_EQ(rows[0].total, 3);
  EXPECT_DOUBLE_EQ(rows[0].self_pct, 50.0);
  EXPECT_EQ(rows[1].function, "baz");
  EXPECT_EQ(rows[1].self, 2);
  EXPECT_EQ(rows[2].function, "foo");
  EXPECT_EQ(rows[2].self, 1);
  EXPECT_EQ(rows[2].total, 4);
  EXPECT_NEAR(rows[2].total_pct, 66.6667, 1e-3);
  EXPECT_EQ(rows[3].function, "main");
  EXPECT_EQ(rows[3].self, 0);
  EXPECT_EQ(rows[3].total, 6);
  EXPECT_DOUBLE_EQ(rows[3].total_pct, 100.0);
  EXPECT_EQ(rows[3].module, "/usr/bin/app");
  EXPECT_EQ(Top(Example(), 2).size(), 2u);
}

TEST(TopTest, RecursionCountsTotalOncePerStack) {
  Profile p = MakeProfile({{"main;fib;fib;fib;fib", 10}, {"main;fib;fib", 5}, {"main;io", 5}});
  std::vector<TopRow> rows = Top(p);
  std::map<std::string, TopRow> by;
  for (const auto& r : rows) by[r.function] = r;
  EXPECT_EQ(by["fib"].self, 15);
  EXPECT_EQ(by["fib"].total, 15);  // not 10*4 + 5*2
  EXPECT_DOUBLE_EQ(by["fib"].total_pct, 75.0);
  EXPECT_EQ(by["main"].total, 20);
  EXPECT_LE(by["main"].total_pct, 100.0);
}

TEST(TopTest, SameNameInTwoModulesIsTwoRows) {
  Profile p = MakeProfile({{"main;init@/lib/a.so", 2}, {"main;init@/lib/b.so", 1}});
  std::vector<TopRow> rows = Top(p);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].module, "/lib/a.so");
  EXPECT_EQ(rows[1].module, "/lib/b.so");
}

TEST(TopTest, EmptyProfile) { EXPECT_TRUE(Top(Profile()).empty()); }

// ---- diff -----------------------------------------------------------------------

TEST(DiffTest, PerFunctionDeltas) {
  Profile base = MakeProfile({{"main;a", 8}, {"main;b", 2}});
  Profile target = MakeProfile({{"main;a", 2}, {"main;b", 6}, {"main;c", 2}});
  DiffResult d = Diff(base, target);
  EXPECT_EQ(d.base_total, 10);
  EXPECT_EQ(d.target_total, 10);
  std::map<std::string, DiffRow> by;
  for (const auto& r : d.rows) by[r.function] = r;
  EXPECT_EQ(by["a"].delta_self, -6);
  EXPECT_DOUBLE_EQ(by["a"].delta_self_pct, -60.0);
  EXPECT_EQ(by["b"].delta_self, 4);
  EXPECT_DOUBLE_EQ(by["b"].delta_total_pct, 40.0);
  EXPECT_EQ(by["c"].base_self, 0);
  EXPECT_EQ(by["c"].self, 2);
  EXPECT_EQ(by["main"].delta_total, 0);
  // Sorted by |delta_self_pct|: a (60) before b (40) before c (20) before main (0).
  ASSERT_EQ(d.rows.size(), 4u);
  EXPECT_EQ(d.rows[0].function, "a");
  EXPECT_EQ(d.rows[1].function, "b");
  EXPECT_EQ(d.rows[2].function, "c");
  EXPECT_EQ(d.rows[3].function, "main");
  EXPECT_EQ(Diff(base, target, 1).rows.size(), 1u);
}

TEST(DiffTest, PercentagesCompareRangesOfDifferentLength) {
  Profile base = MakeProfile({{"main;a", 50}, {"main;b", 50}});
  Profile target = MakeProfile({{"main;a", 5}, {"main;b", 5}});
  for (const auto& r : Diff(base, target).rows) {
    EXPECT_DOUBLE_EQ(r.delta_self_pct, 0.0) << r.function;
  }
}

// ---- max nodes, call site, diff levels, tree bytes, DOT ---------------------

TEST(MaxNodesTest, KeepsTheLargestNodesAndMergesTheRestIntoOther) {
  // main(21) -> a(10), b(6), c(3), d(2); a -> x(10).
  Profile p = MakeProfile({{"main;a;x", 10}, {"main;b", 6}, {"main;c", 3}, {"main;d", 2}});
  // 4 largest non-root nodes: main 21, a 10, x 10, b 6; c and d fold into other.
  EXPECT_EQ(ExportFolded(TruncateToMaxNodes(p, 4)), "main;a;x 10\nmain;b 6\nmain;other 5\n");
  // Ties keep every node of the threshold size.
  EXPECT_EQ(ExportFolded(TruncateToMaxNodes(p, 3)), "main;a;x 10\nmain;other 11\n");
  EXPECT_EQ(ExportFolded(TruncateToMaxNodes(p, 1)), "main;other 21\n");
  // Small enough or disabled: unchanged.
  EXPECT_EQ(ExportFolded(TruncateToMaxNodes(p, 6)), ExportFolded(p));
  EXPECT_EQ(ExportFolded(TruncateToMaxNodes(p, 0)), ExportFolded(p));
  EXPECT_EQ(TruncateToMaxNodes(p, 4).TotalCount(), p.TotalCount());
}

TEST(MaxNodesTest, TruncatedStacksKeepTheirMarkerAndFramesKeepFileAndLine) {
  Profile p = MakeProfile({{"f;g", 4, true}, {"main;h", 1}, {"main;k", 1}});
  Profile cut = TruncateToMaxNodes(p, 3);  // [truncated] 4, f 4, g 4 (main 2 < 4)
  EXPECT_EQ(ExportFolded(cut), "[truncated];f;g 4\nother 2\n");
  bool file_kept = false;
  for (const Frame& f : cut.frames) file_kept = file_kept || (f.function == "g" && f.file == p.frames[0].file);
  EXPECT_TRUE(file_kept);
}

TEST(CallSiteTest, SelectsTheStacksBelowAFunction) {
  EXPECT_EQ(ExportFolded(SelectCallSite(Example(), {"main", "foo"})), "main;foo 1\nmain;foo;bar 3\n");
  EXPECT_EQ(ExportFolded(SelectCallSite(Example(), {"main", "foo", "bar", "deeper"})), "");
  EXPECT_EQ(ExportFolded(SelectCallSite(Example(), {"foo"})), "");
  EXPECT_EQ(ExportFolded(SelectCallSite(Example(), {})), ExportFolded(Example()));
}

TEST(PyroscopeDiffTest, SevenValuesPerNodeWithBothSides) {
  Profile left = Example();                                        // main;baz 2 of 6
  Profile right = MakeProfile({{"main;baz", 8}, {"main;new", 2}});  // main;baz 8 of 10
  PyroscopeFlameGraphDiff d = BuildPyroscopeFlameGraphDiff(left, 1, right, 10, 0);
  EXPECT_EQ(d.left_ticks, 6);
  EXPECT_EQ(d.right_ticks, 100);
  EXPECT_EQ(d.total, 106);
  ASSERT_EQ(d.levels[0], (std::vector<int64_t>{0, 6, 0, 0, 100, 0, 0}));
  std::map<std::string, std::vector<int64_t>> by_name;
  for (size_t l = 0; l < d.levels.size(); ++l) {
    ASSERT_EQ(d.levels[l].size() % 7, 0u);
    for (size_t i = 0; i < d.levels[l].size(); i += 7) {
      by_name[d.names[d.levels[l][i + 6]]] =
          std::vector<int64_t>(d.levels[l].begin() + i, d.levels[l].begin() + i + 6);
    }
  }
  // Level 2 by name: baz, foo, new. baz starts both sides at 0.
  EXPECT_EQ(by_name["baz"], (std::vector<int64_t>{0, 2, 2, 0, 80, 80}));
  EXPECT_EQ(by_name["foo"], (std::vector<int64_t>{0, 4, 1, 0, 0, 0}));  // right: absent
  EXPECT_EQ(by_name["new"], (std::vector<int64_t>{0, 0, 0, 0, 20, 20}));  // x 80 = after baz
  EXPECT_EQ(d.max_self, 80);
}

// Decodes Pyroscope tree bytes into "name self [children]" lines, depth-first.
std::vector<std::string> DecodeTree(const std::string& b) {
  std::vector<std::string> out;
  size_t pos = 0;
  auto uvarint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; pos < b.size(); shift += 7) {
      uint8_t c = static_cast<uint8_t>(b[pos++]);
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) break;
    }
    return v;
  };
  while (pos < b.size()) {
    const uint64_t len = uvarint();
    std::string name = b.substr(pos, len);
    pos += len;
    const uint64_t self = uvarint();
    const uint64_t kids = uvarint();
    out.push_back(name + " " + std::to_string(self) + " " + std::to_string(kids));
  }
  return out;
}

TEST(PyroscopeTreeTest, DepthFirstNameSelfChildren) {
  // Root (empty name), then the last child first (a stack of pending nodes).
  EXPECT_EQ(DecodeTree(EncodePyroscopeTree(Example(), 0, 10)),
            (std::vector<std::string>{" 0 1", "main 0 2", "foo 10 1", "bar 30 0", "baz 20 0"}));
  EXPECT_EQ(EncodePyroscopeTree(Profile(), 0, 1), "");
}

TEST(DotTest, NodesAndWeightedEdges) {
  std::string dot = ExportDot(Example(), 0, 10, "ns");
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  EXPECT_NE(dot.find("Total: 60 ns"), std::string::npos);
  EXPECT_NE(dot.find("bar\\n30 ns (50.00%)\\nof 30 ns (50.00%)"), std::string::npos);
  EXPECT_NE(dot.find("[label=\"40 ns\""), std::string::npos);  // main -> foo
  EXPECT_EQ(dot.back(), '\n');
  // max_nodes keeps the largest functions and drops edges to the others.
  std::string small = ExportDot(Example(), 2, 1, "");
  EXPECT_EQ(small.find("bar"), std::string::npos);
  EXPECT_EQ(small.find("baz"), std::string::npos);
}

}  // namespace
}  // namespace exporter
}  // namespace stackstream
