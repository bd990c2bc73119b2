// Fuzz target: the ingest service's request handling, without the network.
// An IngestRequest goes through the real service (validation, conversion,
// storage into a real SQLite store). Invariant: a request that was
// acknowledged is acknowledged again as a duplicate when re-sent (the
// exactly-once rule on (agent_instance_id, sequence)).
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.h"
#include "ingest/ingest_service.h"
#include "stackstream/v1/ingest.grpc.pb.h"
#include "storage/store.h"

namespace {

struct Fixture {
  std::unique_ptr<stackstream::collector::Store> store;
  std::unique_ptr<grpc::Service> service;
};

Fixture* Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    char dir[] = "/tmp/ss-fuzz-ingest-XXXXXX";
    FUZZ_CHECK(mkdtemp(dir) != nullptr, "mkdtemp");
    std::string path = std::string(dir) + "/profiles.db";
    stackstream::Status s = stackstream::collector::OpenStore("sqlite:" + path, &fx->store);
    FUZZ_CHECK(s.ok(), "open store: %s", s.ToString().c_str());
    stackstream::collector::IngestOptions options;
    fx->service = stackstream::collector::NewIngestService(fx->store.get(), nullptr, options);
    return fx;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stackstream::v1::IngestRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto* service = static_cast<stackstream::v1::IngestService::Service*>(Get()->service.get());
  grpc::ServerContext ctx;
  stackstream::v1::IngestAck ack;
  grpc::Status st = service->Push(&ctx, &request, &ack);
  if (!st.ok()) {
    FUZZ_CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                   st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED,
               "unexpected status %d: %s", static_cast<int>(st.error_code()),
               st.error_message().c_str());
    return 0;
  }
  FUZZ_CHECK(ack.sequence() == request.sequence(), "ack for another sequence");
  grpc::ServerContext ctx2;
  stackstream::v1::IngestAck again;
  st = service->Push(&ctx2, &request, &again);
  FUZZ_CHECK(st.ok() && again.duplicate(), "a re-sent acknowledged summary was not a duplicate");
  return 0;
}
