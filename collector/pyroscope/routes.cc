#include "pyroscope/routes.h"

#include <httplib.h>

#include <set>

#include "http/time_parse.h"

namespace stackstream {
namespace collector {

void PyroscopeRoutes::Register(httplib::Server* server, Serve serve) {
  httplib::Server& s = *server;
  // Grafana's Pyroscope data source and Profiles Drilldown (Connect, unary POST).
  s.Post(R"(/querier\.v1\.QuerierService/([A-Za-z]+))",
         [this, serve](const httplib::Request& req, httplib::Response& res) {
           const std::string method = req.matches[1];
           static const std::set<std::string> kKnown = {"ProfileTypes",
                                                        "LabelNames",
                                                        "LabelValues",
                                                        "Series",
                                                        "SelectMergeStacktraces",
                                                        "SelectMergeSpanProfile",
                                                        "SelectMergeProfile",
                                                        "SelectSeries",
                                                        "Diff",
                                                        "GetProfileStats"};
           serve(kKnown.count(method) ? "querier." + method : "querier.other", res, [&] {
             return querier_.Handle(method, req.get_header_value("Content-Type"), req.body,
                                    NowUnixNanos());
           });
         });
  s.Post(R"(/settings\.v1\.SettingsService/([A-Za-z]+))",
         [this, serve](const httplib::Request& req, httplib::Response& res) {
           const std::string method = req.matches[1];
           serve("settings", res, [&] {
             return querier_.HandleSettings(method, req.get_header_value("Content-Type"), req.body);
           });
         });
  s.Get("/pyroscope/render", [this, serve](const httplib::Request& req, httplib::Response& res) {
    serve("render", res, [&] { return render_.Render(req.params, NowUnixNanos()); });
  });
  s.Get("/pyroscope/render-diff",
        [this, serve](const httplib::Request& req, httplib::Response& res) {
          serve("render_diff", res, [&] { return render_.RenderDiff(req.params, NowUnixNanos()); });
        });
  // Pyroscope's legacy ingest (what other agents push).
  s.Post("/ingest", [this, serve](const httplib::Request& req, httplib::Response& res) {
    serve("ingest", res, [&] { return ingest_.Handle(req.params, req.body, NowUnixNanos()); });
  });
}

}  // namespace collector
}  // namespace stackstream
