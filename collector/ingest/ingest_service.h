// IngestServiceImpl factory: the gRPC service object behind IngestServer,
// exposed so a caller can register it on its own grpc::ServerBuilder.
// Thread-safety: the returned service is thread-safe.
#pragma once

#include <grpcpp/impl/codegen/service_type.h>

#include <memory>

#include "ingest/ingest_server.h"

namespace stackstream {
namespace collector {

// "store" and "metrics" (may be null) must outlive the service. Only
// "auth_token" and "limits" of "options" are used.
std::unique_ptr<grpc::Service> NewIngestService(Store* store, Metrics* metrics,
                                                const IngestOptions& options);

}  // namespace collector
}  // namespace stackstream
