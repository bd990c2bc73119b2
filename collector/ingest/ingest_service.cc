#include "ingest/ingest_service.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/method_handler.h>
#include <spdlog/spdlog.h>

#include <string>

#include "format/summary_convert.h"
#include "format/validate.h"
#include "stackstream/v1/ingest.grpc.pb.h"
#include "storage/process_labels.h"

namespace stackstream {
namespace collector {

namespace {

// A request read from an ingest stream. gRPC hands the serialized message to
// SerializationTraits<ReceivedRequest> (below), which parses it into this
// arena and keeps its size: a summary is thousands of small messages and
// strings (one heap allocation each without an arena), and gRPC knows the
// size it received, where ByteSizeLong() would walk the whole message again.
struct ReceivedRequest {
  ReceivedRequest() : arena(Options()) {}
  static google::protobuf::ArenaOptions Options() {
    google::protobuf::ArenaOptions o;
    o.start_block_size = 16 << 10;
    o.max_block_size = 64 << 10;
    return o;
  }
  google::protobuf::Arena arena;
  const v1::IngestRequest* request = nullptr;  // in "arena"; null until parsed
  size_t bytes = 0;  // serialized (uncompressed) size
};

}  // namespace
}  // namespace collector
}  // namespace stackstream

template <>
class grpc::SerializationTraits<stackstream::collector::ReceivedRequest> {
 public:
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer,
                                  stackstream::collector::ReceivedRequest* out) {
    out->request = nullptr;
    out->arena.Reset();
    out->bytes = buffer->Length();
    auto* request =
        google::protobuf::Arena::CreateMessage<stackstream::v1::IngestRequest>(&out->arena);
    grpc::Status st =
        grpc::GenericDeserialize<grpc::ProtoBufferReader, stackstream::v1::IngestRequest>(
            buffer, request);
    if (st.ok()) out->request = request;
    return st;
  }
  // Only ever received.
  static grpc::Status Serialize(const stackstream::collector::ReceivedRequest&, grpc::ByteBuffer*,
                                bool*) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "ReceivedRequest is not sent");
  }
};

namespace stackstream {
namespace collector {

namespace {

// Compares without an early exit, so the time taken does not reveal how much
// of the token matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

grpc::StatusCode GrpcCode(Status::Code code) {
  switch (code) {
    case Status::kOk: return grpc::StatusCode::OK;
    case Status::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case Status::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Status::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case Status::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case Status::kIOError:
    case Status::kUnavailable: return grpc::StatusCode::UNAVAILABLE;  // the agent retries
    case Status::kCorruption:
    case Status::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

int StreamMethodIndex() {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          "stackstream.v1.IngestService");
  const google::protobuf::MethodDescriptor* method =
      service != nullptr ? service->FindMethodByName("Stream") : nullptr;
  if (method == nullptr) abort();  // the generated code and its descriptor disagree
  return method->index();
}

class IngestServiceImpl final : public v1::IngestService::Service {
 public:
  IngestServiceImpl(Store* store, Metrics* metrics, const IngestOptions& options)
      : store_(store), metrics_(metrics), token_(options.auth_token), limits_(options.limits) {
    // Stream reads ReceivedRequests (the handler is the generated one's with
    // our request type). gRPC numbers a service's methods in the proto's
    // order, as the descriptor does.
    MarkMethodStreamed(
        StreamMethodIndex(), new grpc::internal::BidiStreamingHandler<IngestServiceImpl, ReceivedRequest,
                                                    v1::IngestAck>(
               [](IngestServiceImpl* service, grpc::ServerContext* ctx,
                  grpc::ServerReaderWriter<v1::IngestAck, ReceivedRequest>* stream) {
                 return service->ReceiveStream(ctx, stream);
               },
               this));
  }

  grpc::Status ReceiveStream(grpc::ServerContext* ctx,
                             grpc::ServerReaderWriter<v1::IngestAck, ReceivedRequest>* stream) {
    grpc::Status st = Authenticate(ctx);
    if (!st.ok()) return st;
    if (metrics_) metrics_->AgentConnected();
    ReceivedRequest received;
    v1::IngestAck ack;
    while (stream->Read(&received) && received.request != nullptr) {
      st = Handle(*received.request, received.bytes, &ack);
      received.request = nullptr;
      received.arena.Reset();  // an idle stream holds no summary
      if (!st.ok()) break;
      if (!stream->Write(ack)) {
        st = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        break;
      }
    }
    if (metrics_) metrics_->AgentDisconnected();
    return st;
  }

  grpc::Status Push(grpc::ServerContext* ctx, const v1::IngestRequest* request,
                    v1::IngestAck* ack) override {
    grpc::Status st = Authenticate(ctx);
    if (!st.ok()) return st;
    return Handle(*request, request->ByteSizeLong(), ack);
  }

 private:
  grpc::Status Authenticate(grpc::ServerContext* ctx) {
    if (token_.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    std::string got = it == md.end() ? std::string() : std::string(it->second.data(),
                                                                   it->second.size());
    if (ConstantTimeEquals(got, "Bearer " + token_)) return grpc::Status::OK;
    if (metrics_) metrics_->Rejected("unauthenticated");
    spdlog::warn("ingest: rejected call from {}: {} bearer token", ctx->peer(),
                 it == md.end() ? "missing" : "wrong");
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        it == md.end() ? "missing authorization: Bearer token"
                                       : "wrong bearer token");
  }

  grpc::Status Reject(const v1::IngestRequest& request, Status::Code code,
                      const std::string& reason, const std::string& message) {
    std::string msg = "sequence " + std::to_string(request.sequence()) + ": " + message;
    if (metrics_) metrics_->Rejected(reason);
    spdlog::info("ingest: rejected summary from agent {}: {}", request.agent_instance_id(), msg);
    return grpc::Status(GrpcCode(code), msg);
  }

  // "bytes": the request's serialized size (stackstream_bytes_received_total).
  grpc::Status Handle(const v1::IngestRequest& request, size_t bytes, v1::IngestAck* ack) {
    const v1::StackSummary& summary = request.summary();
    Status s = ValidateSummary(summary, limits_);
    if (!s.ok()) {
      return Reject(request, s.code(),
                    s.code() == Status::kResourceExhausted ? "too_large" : "invalid", s.message());
    }
    if (request.agent_instance_id() != summary.process().agent_instance_id()) {
      return Reject(request, Status::kInvalidArgument, "invalid",
                    "agent_instance_id \"" + request.agent_instance_id() +
                        "\" differs from summary process.agent_instance_id \"" +
                        summary.process().agent_instance_id() + "\"");
    }
    SummaryRecord record;
    record.agent_instance_id = request.agent_instance_id();
    record.sequence = request.sequence();
    record.service = summary.process().service();
    record.labels = SummaryLabels(summary);
    // store.h: labels carry host too (from the process identity when the
    // agent did not send it as a label); the pid is a process label, kept
    // per write, never a series label (process_labels.h).
    if (!summary.process().host().empty()) record.labels.emplace("host", summary.process().host());
    record.labels.erase(kPidLabel);
    record.pid = summary.process().pid();
    ProfileBuilder builder;
    AddSummaryToProfile(summary, &builder);
    record.profile = builder.Release();
    AddSummaryCounters(summary.counters(), &record.counters);

    bool duplicate = false;
    s = store_->Write(record, &duplicate);
    // Heap sample sets: each type is a profile type of its own, stored as
    // its mode. Idempotency per type: (agent_instance_id + "/" + type,
    // sequence). Drop counters stay with the main record.
    for (int i = 0; s.ok() && i < summary.sample_sets_size(); ++i) {
      const v1::SampleSet& set = summary.sample_sets(i);
      SummaryRecord heap;
      heap.agent_instance_id = record.agent_instance_id + "/" + set.type();
      heap.sequence = record.sequence;
      heap.service = record.service;
      heap.labels = record.labels;
      heap.pid = record.pid;
      ProfileBuilder hb;
      AddSampleSetToProfile(summary, set, &hb);
      heap.profile = hb.Release();
      heap.profile.mode = set.type();
      heap.profile.start_unix_nanos = summary.start_time_unix_nanos();
      heap.profile.end_unix_nanos = summary.end_time_unix_nanos();
      bool heap_duplicate = false;
      s = store_->Write(heap, &heap_duplicate);
    }
    if (!s.ok()) {
      spdlog::error("ingest: storing sequence {} of agent {} failed: {}", request.sequence(),
                    request.agent_instance_id(), s.ToString());
      if (metrics_) metrics_->StorageError();
      return Reject(request, s.code(), "storage", "not stored: " + s.message());
    }
    if (metrics_) {
      if (duplicate) {
        metrics_->SummaryDuplicate();
      } else {
        metrics_->SummaryIngested(record.profile.TotalCount(), static_cast<int64_t>(bytes));
      }
    }
    ack->set_sequence(request.sequence());
    ack->set_duplicate(duplicate);
    return grpc::Status::OK;
  }

  Store* const store_;
  Metrics* const metrics_;
  const std::string token_;
  const SummaryLimits limits_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewIngestService(Store* store, Metrics* metrics,
                                                const IngestOptions& options) {
  return std::make_unique<IngestServiceImpl>(store, metrics, options);
}

}  // namespace collector
}  // namespace stackstream
