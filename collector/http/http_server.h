// HttpServer: the collector's HTTP API (contract.md): /api/v1/services,
// /api/v1/profile, /api/v1/top, /api/v1/diff, /api/v1/series, /metrics,
// /healthz, and the Pyroscope Connect query API Grafana calls.
// Thread-safe: requests are served concurrently on cpp-httplib's pool.
#pragma once

#include <memory>
#include <string>

#include "format/status.h"
#include "metrics.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

struct HttpOptions {
  std::string listen = "127.0.0.1:7434";
  std::string auth_token;  // when not empty, every endpoint but /healthz needs "Bearer <token>"
  std::string tls_cert, tls_key;  // when both set, serve HTTPS
};

class HttpServer {
 public:
  // "store" and "metrics" must outlive the server.
  HttpServer(Store* store, Metrics* metrics, HttpOptions options);
  ~HttpServer();
  // Binds and starts serving on background threads. Returns once listening.
  Status Start();
  void Stop();
  int port() const;  // the bound port (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace collector
}  // namespace stackstream
