// ingest_load_client: N simulated agents stream M summaries each to a
// collector over real gRPC and print, as JSON on stdout, which sequences were
// acknowledged. Used by test_crash_recovery.py.
//
// Agent i (instance "<run-id>-a<i>") sends sequences 1..M; summary j holds K
// stacks "main;a<i>;s<j>;f<k>" with count k+1, so every acknowledged
// summary can be found in the collector's folded profile. The window of
// summary j starts at --start-unix-s + j seconds. On a stream error an agent
// stops (no retry) and reports the error.
//
// --counters name=value,... sets those drop counters (fields of
// stackstream.v1.Counters) in every summary (used by test_counters.py).
//
// Progress: "acked <total>" lines on stderr every --progress acks.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ingest_summaries.h"
#include "stackstream/v1/ingest.grpc.pb.h"

using stackstream::v1::IngestAck;
using stackstream::v1::IngestRequest;
using stackstream::v1::IngestService;

namespace {

struct AgentResult {
  std::string instance;
  std::vector<uint64_t> acked, duplicates;
  std::string error;
};

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonList(const std::vector<uint64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out + "]";
}

// Parses "name=value,..." into "*counters"; false (and a message on
// stderr) on an unknown name or a bad value.
bool ParseCounters(const std::string& text, stackstream::v1::Counters* counters) {
  const google::protobuf::Descriptor* d = counters->GetDescriptor();
  const google::protobuf::Reflection* r = counters->GetReflection();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    const google::protobuf::FieldDescriptor* f =
        eq == std::string::npos ? nullptr : d->FindFieldByName(item.substr(0, eq));
    if (f == nullptr || f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_INT64) {
      fprintf(stderr, "--counters: unknown counter in \"%s\"\n", item.c_str());
      return false;
    }
    try {
      r->SetInt64(counters, f, std::stoll(item.substr(eq + 1)));
    } catch (const std::exception&) {
      fprintf(stderr, "--counters: bad value in \"%s\"\n", item.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"simulated agents streaming summaries to a collector"};
  std::string target, token, run_id = "load", service = "load";
  int agents = 4, summaries = 100, stacks = 4, progress = 50;
  int64_t start_unix_s = 1700000000;
  std::string counters_text;
  app.add_option("--target", target, "collector gRPC host:port")->required();
  app.add_option("--agents", agents);
  app.add_option("--summaries", summaries, "per agent");
  app.add_option("--stacks", stacks, "per summary");
  app.add_option("--run-id", run_id);
  app.add_option("--service", service);
  app.add_option("--token", token);
  app.add_option("--start-unix-s", start_unix_s);
  app.add_option("--progress", progress);
  app.add_option("--counters", counters_text, "drop counters of every summary: name=value,...");
  CLI11_PARSE(app, argc, argv);
  stackstream::v1::Counters counters;
  if (!ParseCounters(counters_text, &counters)) return 2;

  std::atomic<int64_t> total_acked{0};
  std::mutex progress_mu;
  std::vector<AgentResult> results(agents);
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int a = 0; a < agents; ++a) {
    threads.emplace_back([&, a] {
      AgentResult& res = results[a];
      res.instance = run_id + "-a" + std::to_string(a);
      auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
      auto stub = IngestService::NewStub(channel);
      grpc::ClientContext ctx;
      if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
      ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      auto stream = stub->Stream(&ctx);
      // Acks are read on their own thread so that sends are pipelined, as an
      // agent with a backlog would do.
      std::thread reader([&] {
        IngestAck ack;
        while (stream->Read(&ack)) {
          (ack.duplicate() ? res.duplicates : res.acked).push_back(ack.sequence());
          int64_t n = ++total_acked;
          if (progress > 0 && n % progress == 0) {
            std::lock_guard<std::mutex> l(progress_mu);
            fprintf(stderr, "acked %lld\n", static_cast<long long>(n));
            fflush(stderr);
          }
        }
      });
      for (int seq = 1; seq <= summaries; ++seq) {
        std::vector<stackstream::collector::testing::FoldedCount> folded;
        for (int k = 0; k < stacks; ++k) {
          folded.emplace_back("main;a" + std::to_string(a) + ";s" + std::to_string(seq) + ";f" +
                                  std::to_string(k),
                              k + 1);
        }
        IngestRequest req;
        req.set_agent_instance_id(res.instance);
        req.set_sequence(seq);
        *req.mutable_summary() = stackstream::collector::testing::MakeSummary(
            res.instance, service, (start_unix_s + seq) * 1000000000LL, folded, 1000 + a);
        *req.mutable_summary()->mutable_counters() = counters;
        if (!stream->Write(req)) break;
      }
      stream->WritesDone();
      reader.join();
      grpc::Status st = stream->Finish();
      if (!st.ok()) res.error = std::to_string(st.error_code()) + ": " + st.error_message();
    });
  }
  for (auto& t : threads) t.join();
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int64_t acked_summaries = 0, acked_samples = 0;
  const int64_t per_summary = static_cast<int64_t>(stacks) * (stacks + 1) / 2;
  printf("{\"agents\":[");
  for (int a = 0; a < agents; ++a) {
    const AgentResult& r = results[a];
    acked_summaries += r.acked.size() + r.duplicates.size();
    acked_samples += per_summary * (r.acked.size() + r.duplicates.size());
    printf("%s{\"instance\":%s,\"agent\":%d,\"acked\":%s,\"duplicates\":%s,\"error\":%s}",
           a ? "," : "", JsonString(r.instance).c_str(), a, JsonList(r.acked).c_str(),
           JsonList(r.duplicates).c_str(), JsonString(r.error).c_str());
  }
  printf("],\"acked_summaries\":%lld,\"acked_samples\":%lld,\"samples_per_summary\":%lld,"
         "\"elapsed_s\":%.3f}\n",
         static_cast<long long>(acked_summaries), static_cast<long long>(acked_samples),
         static_cast<long long>(per_summary), elapsed);
  return 0;
}
