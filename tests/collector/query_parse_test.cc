// Selector and time parsing (the HTTP API's query language), and Metrics'
// Prometheus text.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "http/selector.h"
#include "http/time_parse.h"
#include "metrics.h"

namespace stackstream {
namespace collector {
namespace {

constexpr int64_t kS = 1000000000;

std::vector<LabelMatcher> Parse(const std::string& s) {
  std::vector<LabelMatcher> m;
  Status st = ParseSelector(s, &m);
  EXPECT_TRUE(st.ok()) << s << ": " << st.message();
  return m;
}

TEST(SelectorTest, AllFourOperatorsAndWhitespace) {
  auto m = Parse(R"( { service="api", env!="dev",host=~"web-.*" ,  region !~ "eu|us" } )");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].name, "service");
  EXPECT_EQ(m[0].op, LabelMatcher::kEq);
  EXPECT_EQ(m[0].value, "api");
  EXPECT_EQ(m[1].op, LabelMatcher::kNotEq);
  EXPECT_EQ(m[2].op, LabelMatcher::kRegex);
  EXPECT_EQ(m[2].value, "web-.*");
  EXPECT_EQ(m[3].name, "region");
  EXPECT_EQ(m[3].op, LabelMatcher::kNotRegex);
}

TEST(SelectorTest, EmptyForms) {
  EXPECT_TRUE(Parse("").empty());
  EXPECT_TRUE(Parse("{}").empty());
  EXPECT_TRUE(Parse(" { } ").empty());
}

TEST(SelectorTest, EscapesQuotesAndTrailingComma) {
  auto m = Parse(R"({a="x\"y\\z\n", b='it\'s', c=`raw\d+`,})");
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].value, "x\"y\\z\n");
  EXPECT_EQ(m[1].value, "it's");
  EXPECT_EQ(m[2].value, "raw\\d+");
  EXPECT_EQ(m[0].name, "a");
}

TEST(SelectorTest, FormatRoundTrips) {
  auto m = Parse(R"({a="x\"y\\z\n", b!~"q.*"})");
  auto again = Parse(FormatSelector(m));
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].value, m[0].value);
  EXPECT_EQ(again[1].op, LabelMatcher::kNotRegex);
}

TEST(SelectorTest, MetricPrefixOnlyWhenAsked) {
  std::vector<LabelMatcher> m;
  std::string prefix;
  ASSERT_TRUE(ParseSelector("app.cpu{env=\"prod\"}", &m, &prefix).ok());
  EXPECT_EQ(prefix, "app.cpu");
  ASSERT_EQ(m.size(), 1u);
  ASSERT_TRUE(ParseSelector("app.cpu", &m, &prefix).ok());
  EXPECT_EQ(prefix, "app.cpu");
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(ParseSelector("app.cpu{env=\"prod\"}", &m).ok());
}

TEST(SelectorTest, EachKindOfInvalidInputIsRejectedWithAMessage) {
  const char* bad[] = {
      "service=\"api\"",         // no braces
      "{",                       // unterminated
      "{service=\"api\"",        // missing }
      "{service}",               // no operator
      "{service=}",              // no value
      "{service=api}",           // unquoted value
      "{service==\"api\"}",      // bad operator
      "{service!\"api\"}",       // bad operator
      "{=\"api\"}",              // no name
      "{1abc=\"x\"}",            // name starts with a digit
      "{a=\"x\" b=\"y\"}",       // missing comma
      "{a=\"x\"} junk",          // trailing text
      "{a=\"unterminated}",      // unterminated string
      "{a=\"bad \\q escape\"}",  // unknown escape
      "{a=~\"(unclosed\"}",      // bad regex
      "{a=~\"[z-a]\"}",          // bad regex range
      "{,}",                     // stray comma
  };
  for (const char* s : bad) {
    std::vector<LabelMatcher> m;
    Status st = ParseSelector(s, &m);
    EXPECT_FALSE(st.ok()) << s;
    EXPECT_EQ(st.code(), Status::kInvalidArgument) << s;
    EXPECT_NE(st.message().find("selector"), std::string::npos) << st.message();
  }
  std::vector<LabelMatcher> m;
  EXPECT_FALSE(ParseSelector("{a=\"" + std::string(10000, 'x') + "\"}", &m).ok());
  EXPECT_FALSE(ParseSelector("{a=~\"" + std::string(2000, 'x') + "\"}", &m).ok());
  EXPECT_FALSE(ParseSelector("{a=~\"" + std::string(500, '(') + "\"}", &m).ok());
}

TEST(SelectorTest, LabelNames) {
  EXPECT_TRUE(IsValidLabelName("service"));
  EXPECT_TRUE(IsValidLabelName("_x.y_1"));
  EXPECT_FALSE(IsValidLabelName(""));
  EXPECT_FALSE(IsValidLabelName("9a"));
  EXPECT_FALSE(IsValidLabelName("a-b"));
}

// ---- time ------------------------------------------------------------------

int64_t T(const std::string& s, int64_t now = 1700000000 * kS) {
  int64_t out = -1;
  Status st = ParseTime(s, now, &out);
  EXPECT_TRUE(st.ok()) << s << ": " << st.message();
  return out;
}

TEST(TimeParseTest, UnixSeconds) {
  EXPECT_EQ(T("1700000000"), 1700000000 * kS);
  EXPECT_EQ(T("0"), 0);
  EXPECT_EQ(T("1700000000.25"), 1700000000 * kS + kS / 4);
}

TEST(TimeParseTest, Rfc3339) {
  EXPECT_EQ(T("2023-11-14T22:13:20Z"), 1700000000 * kS);
  EXPECT_EQ(T("2023-11-14t22:13:20z"), 1700000000 * kS);
  EXPECT_EQ(T("2023-11-14T23:13:20+01:00"), 1700000000 * kS);
  EXPECT_EQ(T("2023-11-14T21:43:20-00:30"), 1700000000 * kS);
  EXPECT_EQ(T("2023-11-14T22:13:20.5Z"), 1700000000 * kS + kS / 2);
  EXPECT_EQ(T("2024-02-29T00:00:00Z"), 1709164800 * kS);
  EXPECT_EQ(T("1970-01-01T00:00:00Z"), 0);
}

TEST(TimeParseTest, RelativeToNow) {
  const int64_t now = 1700000000 * kS;
  EXPECT_EQ(T("now", now), now);
  EXPECT_EQ(T("now-15m", now), now - 900 * kS);
  EXPECT_EQ(T("now-1h", now), now - 3600 * kS);
  EXPECT_EQ(T("now-7d", now), now - 7 * 86400 * kS);
  EXPECT_EQ(T("now-1h30m", now), now - 5400 * kS);
  EXPECT_EQ(T("now+5m", now), now + 300 * kS);
  EXPECT_EQ(T("now-30s", now), now - 30 * kS);
  EXPECT_EQ(T("now-500ms", now), now - kS / 2);
  EXPECT_EQ(T("now-15", now), now - 15 * kS);  // bare number: seconds
}

TEST(TimeParseTest, Invalid) {
  const char* bad[] = {"",          "yesterday", "now-",        "now-15q",
                       "now*2",     "-5",        "17e8",        "1700000000000",
                       "2023-13-01T00:00:00Z",   "2023-02-30T00:00:00Z",
                       "2023-11-14T22:13:20",    "2023-11-14T25:00:00Z",
                       "2023-11-14 22:13",       "2023-11-14T22:13:20Zjunk",
                       "now-99999999999999d",    "12abc"};
  for (const char* s : bad) {
    int64_t out;
    Status st = ParseTime(s, 0, &out);
    EXPECT_FALSE(st.ok()) << "accepted: \"" << s << "\"";
  }
}

TEST(TimeParseTest, Durations) {
  int64_t d;
  ASSERT_TRUE(ParseDuration("90", &d).ok());
  EXPECT_EQ(d, 90 * kS);
  ASSERT_TRUE(ParseDuration("1h30m", &d).ok());
  EXPECT_EQ(d, 5400 * kS);
  ASSERT_TRUE(ParseDuration("2w", &d).ok());
  EXPECT_EQ(d, 14 * 86400 * kS);
  ASSERT_TRUE(ParseDuration("1.5s", &d).ok());
  EXPECT_EQ(d, 1500000000);
  EXPECT_FALSE(ParseDuration("", &d).ok());
  EXPECT_FALSE(ParseDuration("m", &d).ok());
  EXPECT_FALSE(ParseDuration("5x", &d).ok());
  EXPECT_FALSE(ParseDuration("5m3", &d).ok());
}

TEST(TimeParseTest, FormatRfc3339) {
  EXPECT_EQ(FormatRfc3339(1700000000 * kS), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatRfc3339(1700000000 * kS + kS / 4), "2023-11-14T22:13:20.25Z");
  EXPECT_EQ(T(FormatRfc3339(1234567890123456789)), 1234567890123456789);
}

// ---- Prometheus text ------------------------------------------------------------

// A strict reader of the text exposition format (the subset we emit).
struct Exposition {
  std::map<std::string, std::string> type;  // metric family -> type
  std::vector<std::string> errors;
  std::map<std::string, double> samples;  // full series text -> value
};

std::string Family(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    size_t n = std::string(suffix).size();
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) {
      std::string base = name.substr(0, name.size() - n);
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  if (text.empty() || text.back() != '\n') e.errors.push_back("no trailing newline");
  std::set<std::string> help, finished;
  std::string current;
  std::stringstream ss(text);
  std::string line;
  std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  std::regex sample_re(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*)?\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$)");
  auto enter = [&](const std::string& family) {
    if (family != current) {
      if (finished.count(family)) e.errors.push_back("not contiguous: " + family);
      if (!current.empty()) finished.insert(current);
      current = family;
    }
  };
  while (std::getline(ss, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help_re)) {
      if (!help.insert(m[1]).second) e.errors.push_back("HELP twice: " + m[1].str());
      enter(m[1]);
    } else if (std::regex_match(line, m, type_re)) {
      if (e.type.count(m[1])) e.errors.push_back("TYPE twice: " + m[1].str());
      e.type[m[1]] = m[2];
      enter(m[1]);
    } else if (std::regex_match(line, m, sample_re)) {
      std::string family = Family(m[1], e.type);
      if (!e.type.count(family)) e.errors.push_back("sample before TYPE: " + line);
      enter(family);
      e.samples[line.substr(0, line.rfind(' '))] = std::stod(line.substr(line.rfind(' ') + 1));
    } else {
      e.errors.push_back("bad line: " + line);
    }
  }
  return e;
}

TEST(MetricsTest, RendersStrictPrometheusText) {
  Metrics m;
  m.SummaryIngested(10, 100);
  m.SummaryIngested(5, 50);
  m.SummaryDuplicate();
  m.Rejected("invalid");
  m.Rejected("invalid");
  m.Rejected("we\"ird\\reason\n");
  m.AgentConnected();
  m.AgentConnected();
  m.AgentDisconnected();
  m.ObserveQuery("profile", 0.003);
  m.ObserveQuery("profile", 0.2);
  m.ObserveQuery("profile", 100);  // beyond the last bucket
  m.ObserveQuery("top", 0.0001);
  std::string text = m.RenderPrometheus(4096);
  Exposition e = ParseExposition(text);
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors) << "\n" << text;
  EXPECT_EQ(e.samples["stackstream_summaries_ingested_total"], 2);
  EXPECT_EQ(e.samples["stackstream_samples_ingested_total"], 15);
  EXPECT_EQ(e.samples["stackstream_bytes_received_total"], 150);
  EXPECT_EQ(e.samples["stackstream_summaries_duplicate_total"], 1);
  EXPECT_EQ(e.samples["stackstream_active_agents"], 1);
  EXPECT_EQ(e.samples["stackstream_storage_bytes"], 4096);
  EXPECT_EQ(e.samples["stackstream_rejected_total{reason=\"invalid\"}"], 2);
  EXPECT_EQ(e.samples["stackstream_rejected_total{reason=\"we\\\"ird\\\\reason\\n\"}"], 1);
  EXPECT_EQ(e.type["stackstream_query_duration_seconds"], "histogram");
  EXPECT_EQ(e.type["stackstream_rejected_total"], "counter");
  EXPECT_EQ(e.type["stackstream_active_agents"], "gauge");
  const std::string b = "stackstream_query_duration_seconds_bucket{endpoint=\"profile\",le=";
  EXPECT_EQ(e.samples[b + "\"0.001\"}"], 0);
  EXPECT_EQ(e.samples[b + "\"0.005\"}"], 1);
  EXPECT_EQ(e.samples[b + "\"0.25\"}"], 2);
  EXPECT_EQ(e.samples[b + "\"10\"}"], 2);
  EXPECT_EQ(e.samples[b + "\"+Inf\"}"], 3);
  EXPECT_EQ(e.samples["stackstream_query_duration_seconds_count{endpoint=\"profile\"}"], 3);
  EXPECT_NEAR(e.samples["stackstream_query_duration_seconds_sum{endpoint=\"profile\"}"], 100.203,
              1e-9);
  EXPECT_EQ(e.samples["stackstream_query_duration_seconds_bucket{endpoint=\"top\",le=\"0.001\"}"], 1);
}

TEST(MetricsTest, FreshMetricsAreValidToo) {
  Metrics m;
  Exposition e = ParseExposition(m.RenderPrometheus(0));
  EXPECT_TRUE(e.errors.empty()) << ::testing::PrintToString(e.errors);
  EXPECT_EQ(e.samples["stackstream_summaries_ingested_total"], 0);
}

}  // namespace
}  // namespace collector
}  // namespace stackstream
