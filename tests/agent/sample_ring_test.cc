#include "capture/sample_ring.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace stackstream {
namespace capture {
namespace {

TEST(SampleRingTest, RoundsSlotsUpAndStartsEmpty) {
  SampleRing ring;
  ASSERT_TRUE(ring.Create(5, 256, 1) >= 0);
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
  ASSERT_TRUE(ring.Create(4, 64, 1) >= 0);
  for (int i = 0; i < 4; ++i) {
    SampleRecord* r = ring.TryBeginWrite();
    ASSERT_NE(r, nullptr);
    r->tid = i;
    r->stack_size = 64;
    memset(ring.StackOf(r), i, 64);
    ring.CommitWrite();
  }
  EXPECT_EQ(ring.TryBeginWrite(), nullptr) << "full ring must drop";
  for (int i = 0; i < 4; ++i) {
    const SampleRecord* r = ring.Peek();
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->tid, i);
    EXPECT_EQ(ring.StackOf(r)[63], i);
    ring.Pop();
  }
  EXPECT_TRUE(ring.Empty());
  EXPECT_NE(ring.TryBeginWrite(), nullptr) << "space again after Pop";
}

TEST(SampleRingTest, SecondMappingOfTheFdSeesTheRecords) {
  // The agent's view: the same memfd mapped again, validated by Attach.
  SampleRing host;
  int fd = host.Create(4, 64, 7);
  ASSERT_GE(fd, 0);
  uint64_t bytes = RingBytes(host.capacity(), host.header()->slot_bytes);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(mem, MAP_FAILED);
  SampleRing agent;
  ASSERT_TRUE(agent.Attach(mem, bytes));
  EXPECT_EQ(agent.header()->ring_id, 7u);
  SampleRecord* w = host.TryBeginWrite();
  ASSERT_NE(w, nullptr);
  w->tid = 42;
  host.CommitWrite();
  const SampleRecord* r = agent.Peek();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->tid, 42);
  agent.Pop();
  EXPECT_TRUE(host.Empty()) << "the consumer's tail is shared";
  // Sealed at its size: the agent relies on it (no SIGBUS from a shrink).
  EXPECT_NE(ftruncate(fd, 0), 0);
  EXPECT_FALSE(agent.Attach(mem, bytes - 1)) << "a mapping smaller than the ring is refused";
  static_cast<RingHeader*>(mem)->slots = 3;
  EXPECT_FALSE(agent.Attach(mem, bytes)) << "a corrupt header is refused";
  munmap(mem, bytes);
  close(fd);
}

TEST(SampleRingTest, ConcurrentProducerConsumerKeepsOrderAndCounts) {
  SampleRing ring;
  ASSERT_TRUE(ring.Create(16, 128, 1) >= 0);
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
      memset(ring.StackOf(r), i & 0xff, 128);
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
    for (int j = 0; j < 128; ++j) intact &= ring.StackOf(r)[j] == (r->tid & 0xff);
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
}  // namespace capture
}  // namespace stackstream
