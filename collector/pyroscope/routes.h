// PyroscopeRoutes: every Pyroscope/Grafana-compatible endpoint of the
// collector's HTTP port, registered by the HTTP server in one call:
//   POST /querier.v1.QuerierService/<Method>    (querier_service.h)
//   POST /settings.v1.SettingsService/<Method>  (querier_service.h)
//   GET  /pyroscope/render, /pyroscope/render-diff  (render.h)
//   POST /ingest                                  (legacy_ingest.h)
// Thread-safe: the handlers hold only thread-safe pointers.
#pragma once

#include <functional>
#include <string>

#include "http/http_reply.h"
#include "metrics.h"
#include "pyroscope/legacy_ingest.h"
#include "pyroscope/querier_service.h"
#include "pyroscope/render.h"
#include "storage/store.h"

namespace httplib {
class Server;
class Response;
}  // namespace httplib

namespace stackstream {
namespace collector {

class PyroscopeRoutes {
 public:
  // Runs a handler for the endpoint named "endpoint" (for metrics) and
  // writes its reply into the response: the HTTP server's own wrapper.
  using Serve = std::function<void(const std::string& endpoint, httplib::Response& res,
                                   const std::function<HttpReply()>& handler)>;

  // "store" and "metrics" (may be null) must outlive this object.
  PyroscopeRoutes(Store* store, Metrics* metrics)
      : querier_(store), render_(store), ingest_(store, metrics) {}

  // Adds the routes to "server"; this object must outlive it.
  void Register(httplib::Server* server, Serve serve);

 private:
  pyroscope::QuerierService querier_;
  pyroscope::RenderApi render_;
  LegacyIngest ingest_;
};

}  // namespace collector
}  // namespace stackstream
