#include "config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

namespace stackstream {
namespace agent {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { ClearEnv(); }
  void TearDown() override { ClearEnv(); }
  static void ClearEnv() {
    for (const char* v :
         {"STACKSTREAM_DISABLE", "STACKSTREAM_COLLECTOR", "STACKSTREAM_OUTPUT", "STACKSTREAM_SERVICE",
          "STACKSTREAM_LABELS", "STACKSTREAM_MODE", "STACKSTREAM_HZ", "STACKSTREAM_FLUSH_MS",
          "STACKSTREAM_MAX_DEPTH", "STACKSTREAM_LOG", "STACKSTREAM_LOG_FILE", "STACKSTREAM_TOKEN",
          "STACKSTREAM_TLS_CA", "STACKSTREAM_CPU_CLOCK", "STACKSTREAM_SPOOL_BYTES",
          "STACKSTREAM_PROFILES", "STACKSTREAM_HEAP_RATE"}) {
      unsetenv(v);
    }
  }
};

TEST_F(ConfigTest, Defaults) {
  Config c = ReadConfigFromEnv(42);
  EXPECT_FALSE(c.disabled);
  ASSERT_EQ(c.collectors.size(), 1u);
  EXPECT_EQ(c.collectors[0], "127.0.0.1:7433");
  EXPECT_FALSE(c.collector_set);
  EXPECT_EQ(c.output, "");
  EXPECT_EQ(c.service, "stackstream_agent_unit_test");  // the executable's basename
  EXPECT_EQ(c.mode, Mode::kCpu);
  EXPECT_EQ(c.hz, 100);
  EXPECT_EQ(c.period_nanos(), 10000000);
  EXPECT_EQ(c.flush_ms, 10000);
  EXPECT_EQ(c.max_depth, 128);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_EQ(c.cpu_clock, "auto");
  EXPECT_TRUE(c.warnings.empty());
}

TEST_F(ConfigTest, GoodValues) {
  setenv("STACKSTREAM_DISABLE", "1", 1);
  setenv("STACKSTREAM_COLLECTOR", " a:1 , b:2 ,", 1);
  setenv("STACKSTREAM_OUTPUT", "/tmp/p-%p-%%.pb.gz", 1);
  setenv("STACKSTREAM_SERVICE", "api", 1);
  setenv("STACKSTREAM_LABELS", "env=prod, zone = eu1", 1);
  setenv("STACKSTREAM_MODE", "wall", 1);
  setenv("STACKSTREAM_HZ", "250", 1);
  setenv("STACKSTREAM_FLUSH_MS", "500", 1);
  setenv("STACKSTREAM_MAX_DEPTH", "64", 1);
  setenv("STACKSTREAM_LOG", "debug", 1);
  setenv("STACKSTREAM_CPU_CLOCK", "timer", 1);
  Config c = ReadConfigFromEnv(1234);
  EXPECT_TRUE(c.disabled);
  EXPECT_EQ(c.collectors, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_TRUE(c.collector_set);
  EXPECT_EQ(c.output, "/tmp/p-1234-%.pb.gz");
  EXPECT_EQ(c.service, "api");
  ASSERT_EQ(c.labels.size(), 2u);
  EXPECT_EQ(c.labels[1], (std::pair<std::string, std::string>{"zone", "eu1"}));
  EXPECT_EQ(c.mode, Mode::kWall);
  EXPECT_EQ(c.hz, 250);
  EXPECT_EQ(c.period_nanos(), 4000000);
  EXPECT_EQ(c.flush_ms, 500);
  EXPECT_EQ(c.max_depth, 64);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.cpu_clock, "timer");
  EXPECT_TRUE(c.warnings.empty());
}

TEST_F(ConfigTest, BadValuesKeepDefaultsWithOneWarningEach) {
  setenv("STACKSTREAM_HZ", "fast", 1);
  setenv("STACKSTREAM_FLUSH_MS", "5", 1);
  setenv("STACKSTREAM_MAX_DEPTH", "100000", 1);
  setenv("STACKSTREAM_MODE", "gpu", 1);
  setenv("STACKSTREAM_LOG", "loud", 1);
  setenv("STACKSTREAM_DISABLE", "maybe", 1);
  setenv("STACKSTREAM_LABELS", "novalue,k=v", 1);
  Config c = ReadConfigFromEnv(1);
  EXPECT_EQ(c.hz, 100);
  EXPECT_EQ(c.flush_ms, 10000);
  EXPECT_EQ(c.max_depth, 128);
  EXPECT_EQ(c.mode, Mode::kCpu);
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_FALSE(c.disabled);
  ASSERT_EQ(c.labels.size(), 1u);
  ASSERT_EQ(c.warnings.size(), 7u);
  EXPECT_NE(c.warnings[0].find("STACKSTREAM_DISABLE"), std::string::npos);
  bool hz_named = false;
  for (const auto& w : c.warnings) hz_named |= w.find("STACKSTREAM_HZ=\"fast\"") != std::string::npos;
  EXPECT_TRUE(hz_named);
}

TEST_F(ConfigTest, ProfilesAndHeapRate) {
  Config d = ReadConfigFromEnv(1);
  EXPECT_TRUE(d.profile_cpu);
  EXPECT_FALSE(d.profile_heap);
  EXPECT_EQ(d.heap_rate, 512 * 1024);
  setenv("STACKSTREAM_PROFILES", "cpu,heap", 1);
  setenv("STACKSTREAM_HEAP_RATE", "65536", 1);
  Config c = ReadConfigFromEnv(1);
  EXPECT_TRUE(c.profile_cpu);
  EXPECT_TRUE(c.profile_heap);
  EXPECT_EQ(c.heap_rate, 65536);
  setenv("STACKSTREAM_PROFILES", "heap", 1);
  Config h = ReadConfigFromEnv(1);
  EXPECT_FALSE(h.profile_cpu);
  EXPECT_TRUE(h.profile_heap);
  setenv("STACKSTREAM_PROFILES", "cpu,gpu", 1);
  setenv("STACKSTREAM_HEAP_RATE", "0", 1);
  Config bad = ReadConfigFromEnv(1);
  EXPECT_TRUE(bad.profile_cpu);
  EXPECT_FALSE(bad.profile_heap);
  EXPECT_EQ(bad.heap_rate, 512 * 1024);
  ASSERT_EQ(bad.warnings.size(), 2u);
  EXPECT_NE(bad.warnings[0].find("STACKSTREAM_PROFILES=\"cpu,gpu\""), std::string::npos);
}

TEST_F(ConfigTest, EmptyValuesAreUnset) {
  setenv("STACKSTREAM_HZ", "", 1);
  setenv("STACKSTREAM_COLLECTOR", "", 1);
  Config c = ReadConfigFromEnv(1);
  EXPECT_EQ(c.hz, 100);
  EXPECT_FALSE(c.collector_set);
  EXPECT_TRUE(c.warnings.empty());
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
