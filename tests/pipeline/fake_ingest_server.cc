#include "fake_ingest_server.h"

#include <chrono>
#include <map>
#include <thread>
#include <utility>

namespace stackstream {
namespace testing {

class FakeIngestServer::Service final : public v1::IngestService::Service {
 public:
  grpc::Status Stream(grpc::ServerContext* ctx,
                      grpc::ServerReaderWriter<v1::IngestAck, v1::IngestRequest>* stream) override {
    Behaviour b;
    int64_t stream_index;
    {
      std::lock_guard<std::mutex> lock(mu);
      b = behaviour;
      stream_index = streams++;
      cv.notify_all();
    }
    if (!b.required_token.empty()) {
      auto it = ctx->client_metadata().find("authorization");
      if (it == ctx->client_metadata().end() ||
          std::string(it->second.data(), it->second.size()) != "Bearer " + b.required_token) {
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
      }
    }
    v1::IngestRequest req;
    int64_t n = 0;
    while (stream->Read(&req)) {
      ++n;
      bool fail = b.fail_stream_after >= 0 && n > b.fail_stream_after && stream_index < b.fail_streams;
      {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(req.sequence());
        cv.notify_all();
      }
      if (fail) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test: stream dropped");
      if (b.reject_sequence != 0 && req.sequence() == b.reject_sequence) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "sequence " + std::to_string(req.sequence()) + ": test rejection");
      }
      bool duplicate;
      {
        std::lock_guard<std::mutex> lock(mu);
        instance_id = req.agent_instance_id();
        duplicate = !stored.insert(req.sequence()).second;
        if (duplicate) {
          ++duplicates;
        } else {
          for (const auto& s : req.summary().samples()) stored_samples += s.count();
          counters.push_back(req.summary().counters());
        }
        cv.notify_all();
      }
      if (b.ack) {
        v1::IngestAck ack;
        ack.set_sequence(req.sequence());
        ack.set_duplicate(duplicate);
        if (!stream->Write(ack)) break;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Push(grpc::ServerContext*, const v1::IngestRequest*, v1::IngestAck*) override {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  }

  std::mutex mu;
  std::condition_variable cv;
  Behaviour behaviour;
  int64_t streams = 0;
  std::set<uint64_t> stored;
  std::vector<uint64_t> received;
  int64_t stored_samples = 0;
  int64_t duplicates = 0;
  std::vector<v1::Counters> counters;
  std::string instance_id;
};

FakeIngestServer::FakeIngestServer() : service_(new Service()) {}
FakeIngestServer::~FakeIngestServer() { Stop(); }

bool FakeIngestServer::Start(int port) {
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &selected);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || selected == 0) {
    server_.reset();
    return false;
  }
  port_ = selected;
  return true;
}

void FakeIngestServer::Stop() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_->Wait();
    server_.reset();
  }
}

void FakeIngestServer::set_behaviour(const Behaviour& b) {
  std::lock_guard<std::mutex> lock(service_->mu);
  service_->behaviour = b;
}

std::set<uint64_t> FakeIngestServer::stored() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->stored;
}
std::vector<uint64_t> FakeIngestServer::received() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->received;
}
int64_t FakeIngestServer::stored_samples() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->stored_samples;
}
int64_t FakeIngestServer::streams() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->streams;
}
int64_t FakeIngestServer::duplicates() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->duplicates;
}
std::vector<v1::Counters> FakeIngestServer::counters() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->counters;
}
std::string FakeIngestServer::last_instance_id() const {
  std::lock_guard<std::mutex> lock(service_->mu);
  return service_->instance_id;
}

bool FakeIngestServer::WaitFor(const std::function<bool()>& pred, int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace testing
}  // namespace stackstream
