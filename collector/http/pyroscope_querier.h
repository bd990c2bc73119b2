// PyroscopeQuerier: the Pyroscope query API that Grafana's Pyroscope data
// source calls (Connect protocol, unary): POST
// /querier.v1.QuerierService/{ProfileTypes,LabelNames,LabelValues,
// SelectMergeStacktraces,SelectSeries} with application/proto (or Connect
// JSON) bodies, answered from a Store. Messages: proto/querier/v1/querier.proto.
//
// Mapping: Pyroscope's "service_name" label is stackstream's "service";
// profile types process_cpu:cpu:nanoseconds:cpu:nanoseconds (mode cpu, value
// = samples x period), process_cpu:samples:count:cpu:nanoseconds (mode cpu,
// value = samples) and wall:wall:nanoseconds:wall:nanoseconds (mode wall).
//
// Thread-safe: holds only the Store pointer; Store is thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "http/http_reply.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {

class PyroscopeQuerier {
 public:
  // "store" must outlive this object.
  explicit PyroscopeQuerier(Store* store) : store_(store) {}

  // Serves "method" (the last path element) for a request body of
  // "content_type". Errors are Connect errors: non-200 with
  // {"code": "...", "message": "..."}.
  HttpReply Handle(const std::string& method, const std::string& content_type,
                   const std::string& body, int64_t now_unix_nanos);

 private:
  Store* const store_;
};

// A Connect error reply: HTTP status from "code" (invalid_argument 400,
// unauthenticated 401, not_found 404, unimplemented 501, unavailable 503,
// internal 500) and a JSON body {"code", "message"}.
HttpReply ConnectError(const std::string& code, const std::string& message);

}  // namespace collector
}  // namespace stackstream
