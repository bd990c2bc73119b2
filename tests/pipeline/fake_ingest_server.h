// FakeIngestServer: an in-test IngestService (test double, loopback only)
// whose behaviour the sender tests control: ack everything, stop acking,
// end the stream after N messages, reject a sequence, require a token.
// Stores each (agent_instance_id, sequence) once, like the real collector.
//
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "stackstream/v1/ingest.grpc.pb.h"

namespace stackstream {
namespace testing {

class FakeIngestServer {
 public:
  struct Behaviour {
    bool ack = true;                   // send acks at all
    int64_t fail_stream_after = -1;    // end each stream with UNAVAILABLE after this many
                                       // received messages (that one unacked); -1 = never
    int64_t fail_streams = 0;          // ... for this many streams only
    uint64_t reject_sequence = 0;      // INVALID_ARGUMENT for this sequence (0 = none)
    std::string required_token;        // "authorization" must be "Bearer <token>"
  };

  FakeIngestServer();
  ~FakeIngestServer();

  // Starts on "port" (0 = any free port). Returns false if it cannot bind.
  bool Start(int port = 0);
  void Stop();
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void set_behaviour(const Behaviour& b);

  // Stored sequences (each once), all received ones (resends included),
  // samples stored, streams opened, counters of the last stored summary.
  std::set<uint64_t> stored() const;
  std::vector<uint64_t> received() const;
  int64_t stored_samples() const;
  int64_t streams() const;
  int64_t duplicates() const;
  std::vector<stackstream::v1::Counters> counters() const;
  std::string last_instance_id() const;

  // Waits until "pred" holds (checked on every change) or "timeout_ms".
  bool WaitFor(const std::function<bool()>& pred, int64_t timeout_ms);

 private:
  class Service;
  friend class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace testing
}  // namespace stackstream
