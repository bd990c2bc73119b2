#include "capture/sample_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace stackstream {
namespace agent {
namespace {

TEST(SampleRingTest, RoundsSlotsUpAndStartsEmpty) {
  SampleRing ring;
  ASSERT_TRUE(ring.Init(5, 256));
  EXPECT_EQ(ring.capacity(), 8u);
  EXPECT_EQ(ring.stack_capacity(), 256u);
  EXPECT_TRUE(ring.Empty());
  EXPECT_EQ(ring.Peek(), nullptr);
}

TEST(SampleRingTest, UninitializedRingDropsEverything) {
  SampleRing ring;
  EXPECT_EQ(ring.TryBeginWrite(), nullptr);
  EXPECT_EQ(ring.Peek(), nullptr);
}

TEST(SampleRingTest, FifoAndFullDrops) {
  SampleRing ring;
  ASSERT_TRUE(ring.Init(4, 64));
  for (int i = 0; i < 4; ++i) {
    SampleRecord* r = ring.TryBeginWrite();
    ASSERT_NE(r, nullptr);
    r->tid = i;
    r->stack_size = 64;
    memset(r->stack(), i, 64);
    ring.CommitWrite();
  }
  EXPECT_EQ(ring.TryBeginWrite(), nullptr) << "full ring must drop";
  for (int i = 0; i < 4; ++i) {
    const SampleRecord* r = ring.Peek();
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->tid, i);
    EXPECT_EQ(r->stack()[63], i);
    ring.Pop();
  }
  EXPECT_TRUE(ring.Empty());
  EXPECT_NE(ring.TryBeginWrite(), nullptr) << "space again after Pop";
}

TEST(SampleRingTest, ClearDropsPending) {
  SampleRing ring;
  ASSERT_TRUE(ring.Init(4, 16));
  for (int i = 0; i < 3; ++i) {
    ring.TryBeginWrite()->tid = i;
    ring.CommitWrite();
  }
  ring.Clear();
  EXPECT_TRUE(ring.Empty());
}

TEST(SampleRingTest, ConcurrentProducerConsumerKeepsOrderAndCounts) {
  SampleRing ring;
  ASSERT_TRUE(ring.Init(16, 128));
  constexpr int kN = 200000;
  std::atomic<int> dropped{0};
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) {
      SampleRecord* r = ring.TryBeginWrite();
      if (r == nullptr) {
        dropped.fetch_add(1);
        continue;
      }
      r->tid = i;
      memset(r->stack(), i & 0xff, 128);
      ring.CommitWrite();
    }
  });
  int received = 0, last = -1;
  bool ordered = true, intact = true;
  for (;;) {
    const SampleRecord* r = ring.Peek();
    if (r == nullptr) {
      if (received + dropped.load() == kN && ring.Empty()) break;
      std::this_thread::yield();
      continue;
    }
    if (r->tid <= last) ordered = false;
    last = r->tid;
    for (int j = 0; j < 128; ++j) intact &= r->stack()[j] == (r->tid & 0xff);
    ++received;
    ring.Pop();
  }
  producer.join();
  EXPECT_TRUE(ordered);
  EXPECT_TRUE(intact);
  EXPECT_EQ(received + dropped.load(), kN);
  EXPECT_GT(received, 0);
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
