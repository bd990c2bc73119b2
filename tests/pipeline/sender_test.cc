// Sender against an in-test IngestService: acks trim the spool, resend after
// a dropped stream, server down then up, spool full drops oldest (counted),
// INVALID_ARGUMENT drops one summary, bearer token, failover, bounded
// shutdown with a dead or silent collector.
#include "pipeline/sender.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_ingest_server.h"

namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

using stackstream::testing::FakeIngestServer;

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// A loopback port nobody listens on (bound then closed).
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

v1::StackSummary MakeSummary(int64_t samples, size_t padding = 0) {
  v1::StackSummary s;
  s.set_schema_version(1);
  s.mutable_process()->set_service("sender-test");
  s.add_string_table("");
  s.add_string_table(std::string(padding, 'x'));
  s.add_mappings();
  s.add_functions()->set_name_strindex(1);
  s.add_locations()->add_lines();
  s.add_stacks()->add_location_indexes(0);
  auto* smp = s.add_samples();
  smp->set_count(samples);
  return s;
}

Sender::Options TestOptions(std::vector<std::string> collectors) {
  Sender::Options o;
  o.collectors = std::move(collectors);
  o.agent_instance_id = "0123456789abcdef0123456789abcdef";
  o.backoff_initial_ms = 50;
  o.backoff_max_ms = 500;
  return o;
}

TEST(SenderTest, AcksTrimTheSpool) {
  FakeIngestServer server;
  ASSERT_TRUE(server.Start());
  auto sender = Sender::Create(TestOptions({server.address()}));
  for (int i = 1; i <= 3; ++i) sender->Enqueue(MakeSummary(i), i);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().acked == 3; }, 10000));
  EXPECT_EQ((std::set<uint64_t>{1, 2, 3}), server.stored());
  EXPECT_EQ(6, server.stored_samples());
  EXPECT_EQ("0123456789abcdef0123456789abcdef", server.last_instance_id());
  EXPECT_EQ(0, sender->stats().spooled);
  EXPECT_LE(server.streams(), 3) << "a stream per batch at most";
  int64_t t0 = MonotonicNs();
  sender->Shutdown(MonotonicNs() + 1000000000LL);
  EXPECT_LT(MonotonicNs() - t0, 500000000LL) << "nothing pending: shutdown must be quick";
}

TEST(SenderTest, OneStreamPerBatch) {
  // Once a batch is acknowledged its stream ends (no call stays open between
  // flushes); the next batch opens a new stream on the same channel.
  FakeIngestServer server;
  ASSERT_TRUE(server.Start());
  auto sender = Sender::Create(TestOptions({server.address()}));
  sender->Enqueue(MakeSummary(1), 1);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().acked == 1; }, 10000));
  sender->Enqueue(MakeSummary(2), 2);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().acked == 2; }, 10000));
  EXPECT_EQ(2, server.streams());
  EXPECT_EQ(0, sender->stats().failed_sessions);
  sender->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, ResendsUnackedAfterStreamDrops) {
  FakeIngestServer server;
  FakeIngestServer::Behaviour b;
  b.fail_stream_after = 1;  // 1st stream: store seq 1, drop the stream at seq 2
  b.fail_streams = 1;
  server.set_behaviour(b);
  ASSERT_TRUE(server.Start());
  auto sender = Sender::Create(TestOptions({server.address()}));
  for (int i = 1; i <= 3; ++i) sender->Enqueue(MakeSummary(10), 10);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().acked == 3; }, 10000))
      << "acked " << sender->stats().acked;
  EXPECT_EQ((std::set<uint64_t>{1, 2, 3}), server.stored());
  EXPECT_EQ(30, server.stored_samples()) << "each summary stored exactly once";
  EXPECT_GE(server.streams(), 2);
  EXPECT_GE(sender->stats().failed_sessions, 1);
  sender->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, ServerDownAtStartThenUp) {
  int port = UnusedPort();
  auto sender = Sender::Create(TestOptions({"127.0.0.1:" + std::to_string(port)}));
  sender->Enqueue(MakeSummary(5), 5);
  sender->Enqueue(MakeSummary(5), 5);
  usleep(400000);
  EXPECT_EQ(0, sender->stats().acked);
  EXPECT_GE(sender->stats().failed_sessions, 1);
  FakeIngestServer server;
  ASSERT_TRUE(server.Start(port));
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().acked == 2; }, 10000));
  EXPECT_EQ((std::set<uint64_t>{1, 2}), server.stored());
  sender->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, FullSpoolDropsOldestAndCountsThem) {
  int port = UnusedPort();
  Sender::Options o = TestOptions({"127.0.0.1:" + std::to_string(port)});
  o.spool_bytes = 2 * 1100;  // two 1 KB summaries fit
  auto sender = Sender::Create(o);
  for (int i = 1; i <= 5; ++i) sender->Enqueue(MakeSummary(i, 1000), i);
  EXPECT_EQ(3, sender->stats().dropped_spool_full);
  v1::Counters counters;
  sender->TakeDropCounters(&counters);
  EXPECT_EQ(3, counters.summaries_dropped_spool_full());
  EXPECT_EQ(1 + 2 + 3, counters.samples_dropped_spool_full());
  v1::Counters again;
  sender->TakeDropCounters(&again);
  EXPECT_EQ(0, again.summaries_dropped_spool_full()) << "counters are taken once";
  // The counters travel in the next summary.
  v1::StackSummary next = MakeSummary(6);
  *next.mutable_counters() = counters;
  FakeIngestServer server;
  ASSERT_TRUE(server.Start(port));
  sender->Enqueue(std::move(next), 6);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().spooled == 0; }, 10000));
  std::set<uint64_t> stored = server.stored();
  EXPECT_EQ(0u, stored.count(1));
  EXPECT_EQ(0u, stored.count(2));
  EXPECT_EQ(1u, stored.count(6));
  bool saw_counters = false;
  for (const auto& c : server.counters()) {
    if (c.summaries_dropped_spool_full() == 3 && c.samples_dropped_spool_full() == 6) {
      saw_counters = true;
    }
  }
  EXPECT_TRUE(saw_counters);
  sender->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, InvalidArgumentDropsThatSummaryOnly) {
  FakeIngestServer server;
  FakeIngestServer::Behaviour b;
  b.reject_sequence = 2;
  server.set_behaviour(b);
  ASSERT_TRUE(server.Start());
  auto sender = Sender::Create(TestOptions({server.address()}));
  for (int i = 1; i <= 3; ++i) sender->Enqueue(MakeSummary(1), 1);
  ASSERT_TRUE(server.WaitFor([&] { return sender->stats().spooled == 0; }, 10000));
  EXPECT_EQ((std::set<uint64_t>{1, 3}), server.stored());
  EXPECT_EQ(1, sender->stats().rejected);
  EXPECT_EQ(2, sender->stats().acked);
  // The rejection travels in the next summary's counters, once.
  v1::Counters counters;
  sender->TakeDropCounters(&counters);
  EXPECT_EQ(1, counters.summaries_rejected());
  v1::Counters again;
  sender->TakeDropCounters(&again);
  EXPECT_EQ(0, again.summaries_rejected());
  sender->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, SendsBearerToken) {
  FakeIngestServer server;
  FakeIngestServer::Behaviour b;
  b.required_token = "s3cret";
  server.set_behaviour(b);
  ASSERT_TRUE(server.Start());
  Sender::Options o = TestOptions({server.address()});
  o.token = "wrong";
  auto bad = Sender::Create(o);
  bad->Enqueue(MakeSummary(1), 1);
  o.token = "s3cret";
  auto good = Sender::Create(o);
  good->Enqueue(MakeSummary(1), 1);
  // Both senders run concurrently: the good one may be acked before the bad
  // one's session has been refused, so wait for both.
  ASSERT_TRUE(server.WaitFor(
      [&] { return good->stats().acked == 1 && bad->stats().failed_sessions >= 1; }, 10000));
  EXPECT_EQ(0, bad->stats().acked);
  EXPECT_GE(bad->stats().failed_sessions, 1);
  bad->Shutdown(MonotonicNs() + 100000000LL);
  good->Shutdown(MonotonicNs() + 1000000000LL);
}

TEST(SenderTest, FailsOverToTheNextCollector) {
  FakeIngestServer server;
  ASSERT_TRUE(server.Start());
  std::string dead = "127.0.0.1:" + std::to_string(UnusedPort());
  // Whichever the instance id picks first, both orders reach the live one.
  for (auto collectors : {std::vector<std::string>{dead, server.address()},
                          std::vector<std::string>{server.address(), dead}}) {
    Sender::Options o = TestOptions(collectors);
    auto sender = Sender::Create(o);
    sender->Enqueue(MakeSummary(1), 1);
    EXPECT_TRUE(server.WaitFor([&] { return sender->stats().acked == 1; }, 10000));
    sender->Shutdown(MonotonicNs() + 1000000000LL);
  }
}

TEST(SenderTest, ShutdownIsBoundedWithDeadCollector) {
  auto sender = Sender::Create(TestOptions({"127.0.0.1:" + std::to_string(UnusedPort())}));
  sender->Enqueue(MakeSummary(1), 1);
  int64_t t0 = MonotonicNs();
  sender->Shutdown(t0 + 300000000LL);
  int64_t took = MonotonicNs() - t0;
  EXPECT_LT(took, 600000000LL) << took / 1000000 << " ms";
}

TEST(SenderTest, ShutdownIsBoundedWithSilentCollector) {
  FakeIngestServer server;
  FakeIngestServer::Behaviour b;
  b.ack = false;
  server.set_behaviour(b);
  ASSERT_TRUE(server.Start());
  auto sender = Sender::Create(TestOptions({server.address()}));
  sender->Enqueue(MakeSummary(1), 1);
  ASSERT_TRUE(server.WaitFor([&] { return server.received().size() == 1; }, 10000));
  int64_t t0 = MonotonicNs();
  sender->Shutdown(t0 + 300000000LL);
  int64_t took = MonotonicNs() - t0;
  EXPECT_GE(took, 250000000LL) << "waits for the ack until the deadline";
  EXPECT_LT(took, 600000000LL) << took / 1000000 << " ms";
  EXPECT_EQ(1, sender->stats().spooled);
}

TEST(SenderTest, ShutdownWithoutDataDoesNotConnect) {
  auto sender = Sender::Create(TestOptions({"127.0.0.1:1"}));
  int64_t t0 = MonotonicNs();
  sender->Shutdown(t0 + 1000000000LL);
  EXPECT_LT(MonotonicNs() - t0, 50000000LL);
  EXPECT_EQ(0, sender->stats().sessions);
}

}  // namespace
}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
