// Pyroscope's HTTP render API, which Profiles Drilldown calls through the
// data source proxy for its export and diff views:
//   GET /pyroscope/render?query=<profile type ID>{<selector>}&from=&until=
//       &format=json|dot&max-nodes=N
//     -> flamebearer JSON {version: 1, flamebearer: {names, levels,
//        numTicks, maxSelf}, metadata: {format: "single", units, name,
//        sampleRate, spyName}, timeline: {startTime, samples, durationDelta}}
//        or Graphviz DOT text;
//   GET /pyroscope/render-diff?leftQuery=&leftFrom=&leftUntil=&rightQuery=
//       &rightFrom=&rightUntil=&max-nodes=N
//     -> the same with metadata.format "double", 7-value levels, leftTicks
//        and rightTicks.
// Times: unix seconds or milliseconds, RFC 3339, "now-1h" (time_parse.h).
// The legacy query form "app.cpu{...}" reads service "app", type cpu.
// Errors: {"error": "..."} with 4xx/5xx. Thread-safe (Store is).
#pragma once

#include <cstdint>

#include "http/http_reply.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

class RenderApi {
 public:
  // "store" must outlive this object.
  explicit RenderApi(Store* store) : store_(store) {}

  HttpReply Render(const QueryParams& params, int64_t now_unix_nanos);
  HttpReply RenderDiff(const QueryParams& params, int64_t now_unix_nanos);

 private:
  Store* const store_;
};

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
