#include "ingest/ingest_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "ingest/ingest_service.h"

namespace stackstream {
namespace collector {

namespace {

Status ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return Status::OK();
}

}  // namespace

struct IngestServer::Impl {
  Store* store;
  Metrics* metrics;
  IngestOptions options;
  std::unique_ptr<grpc::Service> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

IngestServer::IngestServer(Store* store, Metrics* metrics, IngestOptions options)
    : impl_(new Impl) {
  impl_->store = store;
  impl_->metrics = metrics;
  impl_->options = std::move(options);
}

IngestServer::~IngestServer() { Stop(0); }

Status IngestServer::Start() {
  const IngestOptions& o = impl_->options;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return Status::InvalidArgument("TLS needs both a certificate and a key");
  }
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    Status s = ReadFile(o.tls_key, &pair.private_key);
    if (s.ok()) s = ReadFile(o.tls_cert, &pair.cert_chain);
    if (!s.ok()) return Status::InvalidArgument("TLS: " + s.message());
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  impl_->service = NewIngestService(impl_->store, impl_->metrics, o);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, creds, &impl_->port);
  builder.RegisterService(impl_->service.get());
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  // Agents keep streams open for hours and may ping to keep NATs alive.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return Status::IOError("cannot listen for gRPC on " + o.listen);
  }
  return Status::OK();
}

void IngestServer::Stop(int grace_ms) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  impl_->server->Wait();
  impl_->server.reset();
}

int IngestServer::port() const { return impl_->port; }

}  // namespace collector
}  // namespace stackstream
