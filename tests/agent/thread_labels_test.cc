// Thread labels (capture/thread_labels.h): the C API's rules, and that a
// signal interrupting the writer at any instruction copies whole labels.
#include "capture/thread_labels.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <string>

#include <gtest/gtest.h>

namespace stackstream {
namespace agent {
namespace {

std::string Key(const capture::RecordLabel& l) { return std::string(l.key, l.key_size); }
std::string Value(const capture::RecordLabel& l) { return std::string(l.value, l.value_size); }

TEST(ThreadLabels, SetReplaceClearCopy) {
  capture::SampleRecord rec;
  memset(&rec, 0xff, sizeof rec);
  CopyThreadLabels(&rec);
  EXPECT_EQ(rec.label_count, 0u);
  ASSERT_EQ(SetThreadLabel("span_id", "00f067aa0ba902b7"), 0);
  ASSERT_EQ(SetThreadLabel("span_name", "GET /x"), 0);
  ASSERT_EQ(SetThreadLabel("span_id", "7e2b1c0d9a8f6e5d"), 0);  // replaces
  CopyThreadLabels(&rec);
  ASSERT_EQ(rec.label_count, 2u);
  EXPECT_EQ(Key(rec.labels[0]), "span_id");
  EXPECT_EQ(Value(rec.labels[0]), "7e2b1c0d9a8f6e5d");
  EXPECT_EQ(Key(rec.labels[1]), "span_name");
  EXPECT_EQ(Value(rec.labels[1]), "GET /x");
  EXPECT_TRUE(capture::IsValidRecordLabel(rec.labels[0]));
  ASSERT_EQ(ClearThreadLabel("span_id"), 0);
  ASSERT_EQ(ClearThreadLabel("span_id"), 0);  // not set: still 0
  CopyThreadLabels(&rec);
  ASSERT_EQ(rec.label_count, 1u);
  EXPECT_EQ(Key(rec.labels[0]), "span_name");
  ASSERT_EQ(ClearThreadLabel("span_name"), 0);
  CopyThreadLabels(&rec);
  EXPECT_EQ(rec.label_count, 0u);
}

TEST(ThreadLabels, BoundsAndRules) {
  errno = 0;
  EXPECT_EQ(SetThreadLabel(nullptr, "v"), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(SetThreadLabel("", "v"), -1);
  EXPECT_EQ(SetThreadLabel("9key", "v"), -1);
  EXPECT_EQ(SetThreadLabel("k-y", "v"), -1);
  EXPECT_EQ(SetThreadLabel(std::string(32, 'k').c_str(), "v"), -1);  // > 31 bytes
  EXPECT_EQ(SetThreadLabel(std::string(31, 'k').c_str(), "v"), 0);
  EXPECT_EQ(SetThreadLabel("k", std::string(64, 'v').c_str()), -1);   // > 63 bytes
  EXPECT_EQ(SetThreadLabel("k", "tab\\there"), 0);
  EXPECT_EQ(SetThreadLabel("k", "new\nline"), -1);                      // not printable
  EXPECT_EQ(SetThreadLabel("k", "\xc3\xa9"), -1);                        // not ASCII
  EXPECT_EQ(SetThreadLabel("k", nullptr), -1);
  EXPECT_EQ(SetThreadLabel("k", ""), 0);  // empty value is a value
  EXPECT_EQ(SetThreadLabel("a", "1"), 0);
  EXPECT_EQ(SetThreadLabel("b", "2"), 0);  // 4 slots: 31k, k, a, b
  errno = 0;
  EXPECT_EQ(SetThreadLabel("c", "3"), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(ClearThreadLabel("bad-key"), -1);
  for (const char* k : {"a", "b", "k"}) EXPECT_EQ(ClearThreadLabel(k), 0);
  EXPECT_EQ(ClearThreadLabel(std::string(31, 'k').c_str()), 0);
  EXPECT_EQ(SetThreadLabel("c", "3"), 0);
  EXPECT_EQ(ClearThreadLabel("c"), 0);
}

// Checked inside the signal handler: "span_id" is 8 hex digits twice,
// "span_name" is "n<k>-<k>".
std::atomic<long> g_copies{0}, g_torn{0}, g_labelled{0};

bool HalvesMatch(const capture::RecordLabel& l) {
  if (l.value_size != 16) return false;
  return memcmp(l.value, l.value + 8, 8) == 0;
}

bool NameMatches(const capture::RecordLabel& l) {
  // "n" digits "-" the same digits
  if (l.value_size < 4 || l.value[0] != 'n' || (l.value_size - 2) % 2 != 0) return false;
  const int n = (l.value_size - 2) / 2;
  return l.value[1 + n] == '-' && memcmp(l.value + 1, l.value + 2 + n, n) == 0;
}

void OnSignal(int) {
  capture::SampleRecord rec;
  CopyThreadLabels(&rec);
  g_copies.fetch_add(1, std::memory_order_relaxed);
  if (rec.label_count > 0) g_labelled.fetch_add(1, std::memory_order_relaxed);
  for (uint32_t i = 0; i < rec.label_count; ++i) {
    const capture::RecordLabel& l = rec.labels[i];
    bool ok = capture::IsValidRecordLabel(l);
    if (l.key_size == 7 && memcmp(l.key, "span_id", 7) == 0) ok = ok && HalvesMatch(l);
    if (l.key_size == 9 && memcmp(l.key, "span_name", 9) == 0) ok = ok && NameMatches(l);
    if (!ok) g_torn.fetch_add(1, std::memory_order_relaxed);
  }
}

TEST(ThreadLabels, SignalNeverCopiesATornLabel) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART;
  ASSERT_EQ(sigaction(SIGUSR2, &sa, nullptr), 0);
  sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGUSR2;
  sev._sigev_un._tid = gettid();
  timer_t timer;
  // A high-resolution clock (CPU-time clocks fire only on the scheduler tick).
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
  itimerspec its{{0, 50000}, {0, 50000}};  // every 50 us
  ASSERT_EQ(timer_settime(timer, 0, &its, nullptr), 0);
  char span[17], name[32];
  unsigned x = 12345;
  timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long switches = 0;
  do {
    for (int i = 0; i < 1000; ++i, ++switches) {
      x = x * 1664525u + 1013904223u;
      snprintf(span, sizeof span, "%08x%08x", x, x);
      const unsigned k = x >> (x & 31);  // 1 to 10 digits: the length changes
      snprintf(name, sizeof name, "n%u-%u", k, k);
      SetThreadLabel("span_id", span);
      SetThreadLabel("span_name", name);
      if (i % 3 == 0) ClearThreadLabel("span_name");
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 2 && g_copies.load() < 20000);
  timer_delete(timer);
  signal(SIGUSR2, SIG_IGN);
  ClearThreadLabel("span_id");
  ClearThreadLabel("span_name");
  printf("%ld switches, %ld copies in the handler, %ld with labels, %ld torn\n", switches,
         g_copies.load(), g_labelled.load(), g_torn.load());
  EXPECT_GE(g_labelled.load(), 1000);
  EXPECT_EQ(g_torn.load(), 0);
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
