#include "capture/thread_registry.h"

#include <gtest/gtest.h>

#include <mutex>

namespace stackstream {
namespace agent {
namespace {

TEST(ThreadRegistryTest, AcquireFindRetireRecycle) {
  ThreadRegistry reg(8, 1024);
  std::lock_guard<std::mutex> lock(reg.mu());
  ThreadState* a = reg.Acquire(100);
  ThreadState* b = reg.Acquire(200);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->ring.capacity(), 8u);
  EXPECT_EQ(reg.FindLive(100), a);
  EXPECT_EQ(reg.FindLive(300), nullptr);
  EXPECT_EQ(reg.live_count(), 2);

  a->active.store(true);
  reg.Retire(a, /*now_ns=*/1000);
  EXPECT_FALSE(a->active.load());
  EXPECT_EQ(reg.FindLive(100), nullptr);
  EXPECT_EQ(reg.SnapshotLocked().size(), 2u) << "retired states are still drained";

  EXPECT_EQ(reg.Recycle(/*now_ns=*/1500, /*grace_ns=*/1000), 0) << "grace period";
  EXPECT_EQ(reg.Recycle(2000, 1000), 1);
  EXPECT_EQ(reg.SnapshotLocked().size(), 1u);

  ThreadState* c = reg.Acquire(300);
  EXPECT_EQ(c, a) << "recycled, never freed";
  EXPECT_EQ(c->tid.load(), 300);
  EXPECT_FALSE(c->retired);
  EXPECT_EQ(c->stack_hi.load(), 0u);
}

TEST(ThreadRegistryTest, RetiredStateWithPendingSamplesIsNotRecycled) {
  ThreadRegistry reg(4, 64);
  std::lock_guard<std::mutex> lock(reg.mu());
  ThreadState* a = reg.Acquire(1);
  a->ring.TryBeginWrite()->tid = 1;
  a->ring.CommitWrite();
  reg.Retire(a, 0);
  EXPECT_EQ(reg.Recycle(1000000000, 1), 0);
  a->ring.Pop();
  EXPECT_EQ(reg.Recycle(1000000000, 1), 1);
}

TEST(ThreadRegistryTest, UnsampledThreadIsRecycledAtOnce) {
  ThreadRegistry reg(4, 64);
  std::lock_guard<std::mutex> lock(reg.mu());
  ThreadState* a = reg.Acquire(1);
  reg.RetireAndRecycleIfEmpty(a, 0);
  EXPECT_EQ(reg.SnapshotLocked().size(), 0u);
  EXPECT_EQ(reg.Acquire(2), a);
  a->ring.TryBeginWrite()->tid = 2;
  a->ring.CommitWrite();
  reg.RetireAndRecycleIfEmpty(a, 0);
  EXPECT_EQ(reg.SnapshotLocked().size(), 1u) << "pending samples keep it until drained";
}

}  // namespace
}  // namespace agent
}  // namespace stackstream
