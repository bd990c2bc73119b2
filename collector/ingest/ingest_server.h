// IngestServer: the collector's gRPC endpoint for stackstream.v1.IngestService
// (proto/stackstream/v1/ingest.proto). A thin layer: each IngestRequest is
// checked (bearer token, agent instance id, ValidateSummary with
// SummaryLimits), converted to a domain SummaryRecord and written with
// Store::Write; the ack (carrying the request's sequence) is sent only after
// Write returned, i.e. after the summary is durable. A rejected summary ends
// the stream with INVALID_ARGUMENT or RESOURCE_EXHAUSTED and a message that
// names the sequence and the rule; nothing of it is stored. Messages over
// "max_message_bytes" are refused by gRPC itself (RESOURCE_EXHAUSTED).
// gzip-compressed requests are accepted.
//
// Thread-safety: Start/Stop from one thread; the service handles calls
// concurrently on gRPC's thread pool (one thread per open stream).
#pragma once

#include <memory>
#include <string>

#include "format/status.h"
#include "format/validate.h"
#include "metrics.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

struct IngestOptions {
  std::string listen = "127.0.0.1:7433";  // host:port; port 0 picks a free one
  std::string auth_token;  // when not empty, calls need "authorization: Bearer <token>"
  std::string tls_cert, tls_key;  // PEM file paths; when both set, serve TLS
  int max_message_bytes = 16 << 20;
  SummaryLimits limits;
};

class IngestServer {
 public:
  // "store" and "metrics" must outlive the server; "metrics" may be null.
  IngestServer(Store* store, Metrics* metrics, IngestOptions options);
  ~IngestServer();
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  // Binds and starts serving. Returns once listening (or why it cannot).
  Status Start();
  // Stops accepting, gives open calls "grace_ms" to finish, then cancels them.
  void Stop(int grace_ms = 1000);
  int port() const;  // the bound port (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace collector
}  // namespace stackstream
