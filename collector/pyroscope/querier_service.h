// QuerierService: Grafana Pyroscope's query API (Connect protocol, unary)
// as an unmodified Grafana calls it: its Pyroscope data source backend
// (binary proto) and Profiles Drilldown (JSON through the data source proxy).
//   POST /querier.v1.QuerierService/{ProfileTypes, LabelNames, LabelValues,
//        Series, SelectMergeStacktraces, SelectMergeSpanProfile,
//        SelectMergeProfile, SelectSeries, Diff, GetProfileStats}
//   POST /settings.v1.SettingsService/Get   (no settings: {"settings": []})
// Messages: proto/querier/v1/querier.proto, proto/google/v1/profile.proto.
// Every method translates to the Store queries the native API makes
// (query.h); profile types come from profile_types.h.
//
// Thread-safe: holds only the Store pointer; Store is thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "http/http_reply.h"
#include "storage/store.h"

namespace stackstream {
namespace collector {
namespace pyroscope {

class QuerierService {
 public:
  // "store" must outlive this object.
  explicit QuerierService(Store* store) : store_(store) {}

  // Serves querier.v1 "method" (the last path element) for a request body of
  // "content_type". Errors are Connect errors: non-200 with
  // {"code": "...", "message": "..."}; unknown methods are 501 unimplemented.
  HttpReply Handle(const std::string& method, const std::string& content_type,
                   const std::string& body, int64_t now_unix_nanos);

  // settings.v1.SettingsService/<method>: Get answers no settings; others
  // are 501 unimplemented.
  HttpReply HandleSettings(const std::string& method, const std::string& content_type,
                           const std::string& body);

 private:
  Store* const store_;
};

}  // namespace pyroscope
}  // namespace collector
}  // namespace stackstream
