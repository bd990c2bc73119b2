// HttpServer: the collector's HTTP API (contract.md): /api/v1/services,
// /api/v1/profile, /api/v1/top, /api/v1/diff, /api/v1/series, /metrics,
// /healthz, and the Pyroscope Connect query API Grafana calls.
// The web UI's files (HttpOptions::ui_dir) are served at /ui/ and the
// speedscope release bundle at /speedscope/; "/" redirects to /ui/.
// Thread-safe: each connection is served on a worker of an ElasticPool (a
// worker per open connection, up to kMaxHttpThreads), so idle keep-alive
// connections do not starve queries; reads of a request's header or body
// that stall longer than kHttpReadTimeoutSeconds end it with a 400.
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
  // Directory of the web UI (index.html, its modules, vendor/, speedscope/);
  // empty: no UI. The UI's files hold no data, so they are served without
  // the token; every API call the UI makes carries it.
  std::string ui_dir;
};

inline constexpr size_t kMaxHttpThreads = 512;
inline constexpr int kHttpReadTimeoutSeconds = 3;
inline constexpr int kHttpKeepAliveSeconds = 5;

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
