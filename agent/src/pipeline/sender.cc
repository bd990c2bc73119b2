#include "pipeline/sender.h"

#include <ctype.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "pipeline/pipeline_log.h"
#include "pipeline/spool.h"
#include "stackstream/v1/ingest.grpc.pb.h"


namespace stackstream {
namespace agent {
namespace pipeline {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

std::chrono::steady_clock::time_point ToSteady(int64_t monotonic_ns) {
  // steady_clock is CLOCK_MONOTONIC on Linux/libstdc++.
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(monotonic_ns));
}

// Everything the sender thread uses. Shared with the thread, so that a thread
// that could not be joined in time can be left running on its own.
struct State {
  explicit State(const Sender::Options& o) : options(o), spool(o.spool_bytes) {}

  const Sender::Options options;
  mutable std::mutex mu;
  std::condition_variable cv;
  Spool spool;                   // GUARDED_BY(mu)
  uint64_t next_sequence = 1;    // GUARDED_BY(mu)
  bool stop = false;             // GUARDED_BY(mu)
  int64_t deadline_ns = 0;       // GUARDED_BY(mu), valid when stop
  bool done = false;             // GUARDED_BY(mu): thread finished
  grpc::ClientContext* call = nullptr;  // GUARDED_BY(mu): the open stream's context
  SenderStats stats;             // GUARDED_BY(mu)
  int64_t rejected_untold = 0;   // GUARDED_BY(mu): rejections not yet in a summary

  // Sender thread only.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  size_t target = 0;
  std::mt19937_64 rng{std::random_device{}()};
  bool credentials_failed = false;

  bool StopNow() const {  // REQUIRES: mu held
    return stop && (spool.empty() || MonotonicNs() >= deadline_ns);
  }
};

void Log(State* st, const std::string& kind, spdlog::level::level_enum level,
         const std::string& message) {
  if (st->options.quiet && level > spdlog::level::debug) level = spdlog::level::debug;
  PipelineLog("sender." + kind, level, "{}", message);
}

std::shared_ptr<grpc::ChannelCredentials> Credentials(State* st) {
  if (st->options.tls_ca_path.empty()) return grpc::InsecureChannelCredentials();
  std::ifstream in(st->options.tls_ca_path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || pem.str().empty()) {
    st->credentials_failed = true;
    Log(st, "tls_ca", spdlog::level::err,
        "STACKSTREAM_TLS_CA=" + st->options.tls_ca_path +
            " cannot be read; not sending to the collector");
    return nullptr;
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem.str();
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> ChannelFor(State* st, size_t index) {
  if (st->channels.size() != st->options.collectors.size()) {
    st->channels.assign(st->options.collectors.size(), nullptr);
  }
  if (st->channels[index] == nullptr) {
    auto creds = Credentials(st);
    if (creds == nullptr) return nullptr;
    grpc::ChannelArguments args;
    args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                static_cast<int>(st->options.backoff_initial_ms));
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(st->options.backoff_initial_ms));
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(st->options.backoff_max_ms));
    args.SetInt(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, 64 << 20);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // A private subchannel pool: one connection per host process's sender.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    st->channels[index] = grpc::CreateCustomChannel(st->options.collectors[index], creds, args);
  }
  return st->channels[index];
}

enum class SessionEnd { kOk, kError, kRejected };

// One stream to the current target for one batch: (re)sends every spooled
// summary, reads acks on a helper thread, and ends the stream (WritesDone)
// once everything sent is acknowledged, so that no gRPC call stays open
// between flushes. Also returns when the stream fails or when stopping. The
// channel is kept for the next batch.
SessionEnd RunSession(State* st) {
  const std::string& target = st->options.collectors[st->target];
  std::shared_ptr<grpc::Channel> channel = ChannelFor(st, st->target);
  if (channel == nullptr) return SessionEnd::kError;
  auto stub = v1::IngestService::NewStub(channel);
  grpc::ClientContext ctx;
  if (!st->options.token.empty()) {
    ctx.AddMetadata("authorization", "Bearer " + st->options.token);
  }
  ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  ctx.set_wait_for_ready(false);
  {
    std::lock_guard<std::mutex> lock(st->mu);
    if (st->StopNow()) return SessionEnd::kOk;
    st->call = &ctx;
    ++st->stats.sessions;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::IngestRequest, v1::IngestAck>> stream =
      stub->Stream(&ctx);

  bool reader_done = false;  // GUARDED_BY(st->mu)
  int64_t last_ack_ns = MonotonicNs();  // GUARDED_BY(st->mu)
  std::thread reader([&] {
    v1::IngestAck ack;
    while (stream->Read(&ack)) {
      std::lock_guard<std::mutex> lock(st->mu);
      if (st->spool.Ack(ack.sequence())) {
        ++st->stats.acked;
        if (ack.duplicate()) ++st->stats.duplicates;
      }
      last_ack_ns = MonotonicNs();
      st->cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(st->mu);
    reader_done = true;
    st->cv.notify_all();
  });

  uint64_t last_sent = 0;
  bool graceful = false;
  bool cancel = false;  // ack timeout or deadline: we end the stream
  std::vector<std::pair<uint64_t, std::string>> batch;
  while (true) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(st->mu);
      while (true) {
        if (reader_done) break;
        if (st->stop && st->spool.empty()) {
          graceful = true;
          break;
        }
        if (st->stop && MonotonicNs() >= st->deadline_ns) {
          cancel = true;
          break;
        }
        bool pending = !st->spool.empty() && st->spool.entries().back().sequence > last_sent;
        if (pending) break;
        bool waiting = !st->spool.empty() && st->spool.entries().front().sequence <= last_sent;
        if (!waiting) {  // the batch is acknowledged: end this stream
          graceful = true;
          break;
        }
        // Sent but unacknowledged for too long: the stream is stuck.
        if (
            MonotonicNs() - last_ack_ns > st->options.ack_timeout_ms * 1000000LL) {
          Log(st, "ack_timeout", spdlog::level::warn,
              "collector " + target + " did not acknowledge in time; reconnecting");
          cancel = true;
          break;
        }
        st->cv.wait_for(lock, std::chrono::milliseconds(50));
      }
      if (!reader_done && !graceful && !cancel) {
        for (const Spool::Entry& e : st->spool.entries()) {
          if (e.sequence > last_sent) batch.emplace_back(e.sequence, e.request);
        }
        if (!st->spool.empty() && st->spool.entries().front().sequence > last_sent) {
          last_ack_ns = MonotonicNs();  // nothing was outstanding: restart the ack clock
        }
      }
    }
    if (batch.empty()) {
      std::lock_guard<std::mutex> lock(st->mu);
      if (!reader_done && !graceful) cancel = true;
      break;
    }
    bool write_failed = false;
    for (const auto& [sequence, bytes] : batch) {
      v1::IngestRequest request;
      if (!request.ParseFromString(bytes)) continue;
      if (!stream->Write(request)) {
        write_failed = true;
        break;
      }
      last_sent = sequence;
      std::lock_guard<std::mutex> lock(st->mu);
      ++st->stats.writes;
    }
    if (write_failed) break;
  }
  if (graceful) {
    stream->WritesDone();
    // The collector ends the stream when it has read the half-close; one
    // that does not is cut off after the ack timeout (or at the deadline).
    std::unique_lock<std::mutex> lock(st->mu);
    int64_t limit = MonotonicNs() + st->options.ack_timeout_ms * 1000000LL;
    while (!reader_done && MonotonicNs() < limit &&
           !(st->stop && MonotonicNs() >= st->deadline_ns)) {
      st->cv.wait_for(lock, std::chrono::milliseconds(50));
    }
    if (!reader_done) ctx.TryCancel();
  } else if (cancel) {
    ctx.TryCancel();
  }
  // Otherwise the stream already ended (the server closed it, or a write
  // failed because it did): Finish() returns the server's status.
  reader.join();
  grpc::Status status = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(st->mu);
    st->call = nullptr;
  }
  if (graceful || status.ok()) return SessionEnd::kOk;
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
      status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    // All acks before the rejection have been read: the oldest unacknowledged
    // summary is the one rejected.
    std::lock_guard<std::mutex> lock(st->mu);
    Spool::Entry dropped;
    if (st->spool.PopOldest(&dropped)) {
      ++st->stats.rejected;
      ++st->rejected_untold;
    }
    Log(st, "rejected", spdlog::level::warn,
        "collector " + target + " rejected summary " + std::to_string(dropped.sequence) +
            " (dropped): " + status.error_message());
    return SessionEnd::kRejected;
  }
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(st->mu);
    stopping = st->stop;
  }
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    Log(st, "auth", spdlog::level::err,
        "collector " + target + " refused the agent's credentials (STACKSTREAM_TOKEN): " +
            status.error_message());
  } else if (!(stopping && status.error_code() == grpc::StatusCode::CANCELLED)) {
    Log(st, "unavailable", spdlog::level::warn,
        "cannot send to collector " + target + ": " + status.error_message() +
            " (will retry; summaries are kept up to STACKSTREAM_SPOOL_BYTES)");
  }
  return SessionEnd::kError;
}

void Run(std::shared_ptr<State> st) {
  pthread_setname_np(pthread_self(), "ss-sender");
  int64_t backoff_ms = st->options.backoff_initial_ms;
  try {
    while (true) {
      bool stopping_before;
      {
        std::unique_lock<std::mutex> lock(st->mu);
        st->cv.wait(lock, [&] { return st->stop || !st->spool.empty(); });
        if (st->StopNow()) break;
        stopping_before = st->stop;
      }
      SessionEnd end = RunSession(st.get());
      std::unique_lock<std::mutex> lock(st->mu);
      if (st->StopNow()) break;
      // At exit, one attempt that fails is the last: a dead collector must
      // not hold the host's exit up until the deadline.
      if (end == SessionEnd::kError && stopping_before) break;
      if (end == SessionEnd::kOk || end == SessionEnd::kRejected) {
        if (end == SessionEnd::kOk) backoff_ms = st->options.backoff_initial_ms;
        if (end == SessionEnd::kRejected) {
          st->cv.wait_for(lock, std::chrono::milliseconds(st->options.backoff_initial_ms));
        }
        continue;
      }
      ++st->stats.failed_sessions;
      // A fresh channel next time: the old one may sit in gRPC's own
      // reconnect backoff (which can exceed ours) after the collector is back.
      if (st->target < st->channels.size()) {
        st->channels[st->target] = nullptr;
      }
      if (!st->options.collectors.empty()) {
        st->target = (st->target + 1) % st->options.collectors.size();
      }
      // Full jitter between backoff/2 and backoff.
      int64_t sleep_ms = backoff_ms / 2 + static_cast<int64_t>(st->rng() % (backoff_ms / 2 + 1));
      backoff_ms = std::min(backoff_ms * 2, st->options.backoff_max_ms);
      if (st->stop) sleep_ms = std::min<int64_t>(sleep_ms, 50);
      int64_t wake = MonotonicNs() + sleep_ms * 1000000LL;
      if (st->stop) wake = std::min(wake, st->deadline_ns);
      // Shutdown wakes us early for one last attempt.
      bool was_stopping = st->stop;
      st->cv.wait_until(lock, ToSteady(wake), [&] { return st->stop != was_stopping; });
    }
  } catch (const std::exception& e) {
    Log(st.get(), "exception", spdlog::level::err, std::string("sender stopped: ") + e.what());
  } catch (...) {
    Log(st.get(), "exception", spdlog::level::err, "sender stopped");
  }
  st->channels.clear();
  std::lock_guard<std::mutex> lock(st->mu);
  st->done = true;
  st->cv.notify_all();
}

class GrpcSender : public Sender {
 public:
  explicit GrpcSender(const Options& options) : state_(std::make_shared<State>(options)) {
    if (!options.collectors.empty()) {
      state_->target = std::hash<std::string>()(options.agent_instance_id) %
                       options.collectors.size();
    }
  }

  ~GrpcSender() override {
    if (thread_.joinable()) {
      Shutdown(MonotonicNs());
    }
  }

  void Enqueue(v1::StackSummary summary, int64_t samples) override {
    v1::IngestRequest request;
    request.set_agent_instance_id(state_->options.agent_instance_id);
    Spool::Entry entry;
    entry.samples = samples;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (state_->stop) return;
      entry.sequence = state_->next_sequence++;
    }
    request.set_sequence(entry.sequence);
    request.mutable_summary()->Swap(&summary);
    entry.request = request.SerializeAsString();
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      int64_t before = state_->spool.total_dropped_summaries();
      state_->spool.Push(std::move(entry));
      int64_t dropped = state_->spool.total_dropped_summaries() - before;
      state_->stats.dropped_spool_full += dropped;
      ++state_->stats.enqueued;
      if (dropped > 0) {
        Log(state_.get(), "spool_full", spdlog::level::warn,
            "collector unreachable and the spool is full (STACKSTREAM_SPOOL_BYTES); oldest "
            "summaries dropped");
      }
      state_->cv.notify_all();
    }
    if (!thread_.joinable()) {
      thread_ = std::thread(Run, state_);
    }
  }

  void TakeDropCounters(v1::Counters* counters) override {
    int64_t summaries = 0, samples = 0;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->spool.TakeDrops(&summaries, &samples);
      counters->set_summaries_rejected(counters->summaries_rejected() +
                                       state_->rejected_untold);
      state_->rejected_untold = 0;
    }
    counters->set_summaries_dropped_spool_full(counters->summaries_dropped_spool_full() +
                                               summaries);
    counters->set_samples_dropped_spool_full(counters->samples_dropped_spool_full() + samples);
  }

  void Shutdown(int64_t deadline_ns) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    if (!state_->stop) {
      state_->stop = true;
      state_->deadline_ns = deadline_ns;
    }
    state_->cv.notify_all();
    if (!thread_.joinable()) return;
    state_->cv.wait_until(lock, ToSteady(deadline_ns), [&] { return state_->done; });
    if (!state_->done) {
      // Deadline: cancel the stream (unblocks Write/Read) and give the thread
      // a moment to finish.
      if (state_->call != nullptr) state_->call->TryCancel();
      state_->cv.wait_until(lock, ToSteady(MonotonicNs() + 100 * 1000000LL),
                            [&] { return state_->done; });
    }
    bool done = state_->done;
    lock.unlock();
    if (done) {
      thread_.join();
    } else {
      // Never block exit: leave the thread (it owns its State) behind.
      thread_.detach();
    }
  }

  SenderStats stats() const override {
    std::lock_guard<std::mutex> lock(state_->mu);
    SenderStats s = state_->stats;
    s.spooled = static_cast<int64_t>(state_->spool.entries().size());
    return s;
  }

 private:
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace

Sender::Options Sender::OptionsFromConfig(const Config& config) {
  Options o;
  o.collectors = config.collectors;
  o.quiet = !config.collector_set;
  o.token = config.token;
  o.tls_ca_path = config.tls_ca;
  o.spool_bytes = config.spool_bytes > 0 ? config.spool_bytes : (4 << 20);
  return o;
}

std::unique_ptr<Sender> Sender::Create(const Options& options) {
  return std::make_unique<GrpcSender>(options);
}

}  // namespace pipeline
}  // namespace agent
}  // namespace stackstream
