// ingest_bench: collector ingest throughput and query latency.
//
// Ingest: N simulated agents stream pre-built summaries over real gRPC
// (loopback, one channel and one pipelined stream each) to three in-process
// servers in the same run:
//   noop     a bare IngestService that acks at once (the transport's limit)
//   nostore  the real IngestServer (validation + conversion) over a Store
//            that drops everything
//   sqlite   the real IngestServer over a SqliteStore (WAL, synchronous=FULL)
// and reports summaries/s and samples/s for each.
//
// Query: fills a SqliteStore with --services services x --hours hours of
// summaries (one every --flush-s seconds per service) and times
// Store::Query for a merged profile of one service over the last 1 h and the
// last 24 h (p50/p99 over --queries random services).
//
// With --clickhouse URI (a database name; it is dropped and re-created by the
// store): ingest also runs "clickhouse" (one IngestServer over a
// ClickHouseStore) and "clickhouse2" (two IngestServers, each with its own
// ClickHouseStore on the same database: two collectors, the agents split
// between them); the query data is written to ClickHouse too and both engines
// are timed side by side; stored bytes per sample are printed for SQLite,
// ClickHouse and one gzip pprof per summary. With --clickhouse-pid PID (the
// local clickhouse-server's) each ClickHouse ingest run also prints the CPU
// time that server and this process (agents and collectors) used, to tell a
// saturated server from a waiting collector.
//
//   ingest_bench [--only ingest|query] [--agents 8] [--summaries 200] [--rounds 1]
//                [--stacks 200] [--services 50] [--hours 24] [--flush-s 60]
//                [--clickhouse clickhouse://127.0.0.1:8123/bench [--clickhouse-pid PID]]
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "format/pprof_encoder.h"
#include "format/summary_convert.h"
#include "ingest/ingest_server.h"
#include "ingest_summaries.h"
#include "stackstream/v1/ingest.grpc.pb.h"
#include "storage/clickhouse_client.h"
#include "storage/store.h"

namespace {

using namespace stackstream;
using namespace stackstream::collector;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A service's summary: "stacks" distinct stacks of depth 8..24 over a pool of
// 400 functions, random counts (like 100 Hz x 8 threads x 10 s).
v1::StackSummary ServiceSummary(const std::string& instance, const std::string& service,
                                int64_t start_nanos, int stacks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<testing::FoldedCount> folded;
  for (int s = 0; s < stacks; ++s) {
    int depth = 8 + rng() % 17;
    std::string stack = "main";
    for (int d = 1; d < depth; ++d) {
      stack += ";" + service + "::fn" + std::to_string((s * 7 + d * 13 + rng() % 3) % 400);
    }
    folded.emplace_back(stack, 1 + rng() % 80);
  }
  return testing::MakeSummary(instance, service, start_nanos, folded);
}

class NoopIngest final : public v1::IngestService::Service {
  grpc::Status Stream(grpc::ServerContext*,
                      grpc::ServerReaderWriter<v1::IngestAck, v1::IngestRequest>* s) override {
    v1::IngestRequest req;
    v1::IngestAck ack;
    while (s->Read(&req)) {
      ack.set_sequence(req.sequence());
      if (!s->Write(ack)) break;
    }
    return grpc::Status::OK;
  }
};

class NullStore : public Store {
 public:
  Status Write(const SummaryRecord&, bool* d) override {
    *d = false;
    return Status::OK();
  }
  Status ListServices(std::vector<ServiceInfo>*) override { return {}; }
  Status LabelNames(const ProfileQuery&, std::vector<std::string>*) override { return {}; }
  Status LabelValues(const ProfileQuery&, const std::string&, std::vector<std::string>*) override {
    return {};
  }
  Status Query(const ProfileQuery&, Profile*) override { return {}; }
  Status Series(const ProfileQuery&, int64_t, const std::string&,
                std::vector<SeriesPoint>*) override {
    return {};
  }
  Status DeleteBefore(int64_t) override { return {}; }
  int64_t SizeBytes() override { return 0; }
};

struct IngestResult {
  double seconds = 0;
  int64_t summaries = 0, samples = 0;
  bool ok = true;
};

// "agents" streams, each sending its pre-built requests; waits for all acks.
IngestResult Drive(const std::vector<std::string>& targets,
                   const std::vector<std::vector<v1::IngestRequest>>& per_agent) {
  IngestResult r;
  std::atomic<int64_t> acked{0};
  std::atomic<bool> failed{false};
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (size_t a = 0; a < per_agent.size(); ++a) {
    grpc::ChannelArguments args;
    args.SetInt("bench_channel", static_cast<int>(a));  // distinct connections
    channels.push_back(
        grpc::CreateCustomChannel(targets[a], grpc::InsecureChannelCredentials(), args));
  }
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (size_t a = 0; a < per_agent.size(); ++a) {
    threads.emplace_back([&, a] {
      auto stub = v1::IngestService::NewStub(channels[a]);
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      auto stream = stub->Stream(&ctx);
      std::thread reader([&] {
        v1::IngestAck ack;
        while (stream->Read(&ack)) ++acked;
      });
      for (const auto& req : per_agent[a]) {
        if (!stream->Write(req)) break;
      }
      stream->WritesDone();
      reader.join();
      grpc::Status st = stream->Finish();
      if (!st.ok()) {
        fprintf(stderr, "stream failed: %s\n", st.error_message().c_str());
        failed = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  r.seconds = Seconds(t0, Clock::now());
  r.summaries = acked.load();
  for (const auto& reqs : per_agent) {
    for (const auto& req : reqs) r.samples += testing::SampleTotal(req.summary());
  }
  r.ok = !failed && r.summaries == static_cast<int64_t>(per_agent.size() * per_agent[0].size());
  return r;
}

// CPU seconds (user + system) process "pid" has used; -1 if unknown.
double ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field numbers as in proc(5)
    if (i == 14) utime = std::stod(f);
    if (i == 15) stime = std::stod(f);
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

double SelfCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Opens "uri" on an empty database (ClickHouse: the database is dropped).
std::unique_ptr<Store> OpenFresh(const std::string& uri) {
  if (uri.rfind("clickhouse://", 0) == 0) {
    std::string rest = uri.substr(13);
    std::string hostport = rest.substr(0, rest.find('/'));
    std::string db = rest.substr(rest.find('/') + 1);
    db = db.substr(0, db.find('?'));
    ClickHouseEndpoint ep;
    ep.host = hostport.substr(0, hostport.rfind(':'));
    ep.port = std::stoi(hostport.substr(hostport.rfind(':') + 1));
    ClickHouseClient c(ep);
    Status s = c.Execute("DROP DATABASE IF EXISTS " + db, false);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      abort();
    }
  }
  std::unique_ptr<Store> store;
  Status s = OpenStore(uri, &store);
  if (!s.ok()) {
    fprintf(stderr, "open %s: %s\n", uri.c_str(), s.ToString().c_str());
    abort();
  }
  return store;
}

void RunIngest(int agents, int summaries, int stacks, int rounds, const std::string& dir,
               const std::string& clickhouse, int clickhouse_pid) {
  std::vector<std::vector<v1::IngestRequest>> per_agent(agents);
  const int64_t t0 = (1700000000LL) * 1000000000LL;
  for (int a = 0; a < agents; ++a) {
    std::string instance = "bench-" + std::to_string(a);
    v1::StackSummary base =
        ServiceSummary(instance, "svc" + std::to_string(a % 4), t0, stacks, 1000 + a);
    for (int s = 1; s <= summaries; ++s) {
      v1::IngestRequest req;
      req.set_agent_instance_id(instance);
      req.set_sequence(s);
      *req.mutable_summary() = base;
      req.mutable_summary()->set_start_time_unix_nanos(t0 + s * 10000000000LL);
      req.mutable_summary()->set_end_time_unix_nanos(t0 + (s + 1) * 10000000000LL);
      per_agent[a].push_back(std::move(req));
    }
  }
  printf("ingest: %d agents x %d summaries, %d stacks/summary (%lld samples/summary, %zu bytes)\n",
         agents, summaries, stacks,
         static_cast<long long>(testing::SampleTotal(per_agent[0][0].summary())),
         per_agent[0][0].ByteSizeLong());

  auto report = [](const char* name, const IngestResult& r, double base) {
    printf("  %-8s %8.0f summaries/s %11.0f samples/s  (%.2f s%s)%s\n", name,
           r.summaries / r.seconds, r.samples / r.seconds, r.seconds, r.ok ? "" : ", FAILED",
           base > 0 ? ("  " + std::to_string(static_cast<int>(100 * (r.summaries / r.seconds) /
                                                             base)) + "% of noop").c_str()
                    : "");
  };
  // The agents against the real ingest service over "store".
  auto drive_ingest = [&](Store* store, Metrics* metrics) {
    IngestOptions o;
    o.listen = "127.0.0.1:0";
    IngestServer server(store, metrics, o);
    if (!server.Start().ok()) abort();
    IngestResult r =
        Drive(std::vector<std::string>(agents, "127.0.0.1:" + std::to_string(server.port())),
              per_agent);
    server.Stop();
    return r;
  };
  // Each round runs noop, nostore and sqlite back to back (sqlite into a
  // fresh database): on a shared machine a ratio within one round compares
  // like with like, and the median over rounds steadies it.
  double noop_rate = 0;
  std::vector<double> nostore_ratios, sqlite_ratios;
  for (int round = 0; round < rounds; ++round) {
    if (rounds > 1) printf(" round %d\n", round + 1);
    {
      NoopIngest svc;
      grpc::ServerBuilder b;
      int port = 0;
      b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
      b.RegisterService(&svc);
      b.SetMaxReceiveMessageSize(16 << 20);
      auto server = b.BuildAndStart();
      IngestResult r = Drive(std::vector<std::string>(agents, "127.0.0.1:" + std::to_string(port)),
                             per_agent);
      noop_rate = r.summaries / r.seconds;
      report("noop", r, 0);
      server->Shutdown();
    }
    {
      NullStore store;
      IngestResult r = drive_ingest(&store, nullptr);
      report("nostore", r, noop_rate);
      nostore_ratios.push_back(r.summaries / r.seconds / noop_rate);
    }
    {
      std::unique_ptr<Store> store;
      Status s = OpenStore("sqlite:" + dir + "/ingest" + std::to_string(round) + "/profiles.db",
                           &store);
      if (!s.ok()) abort();
      Metrics metrics;
      IngestResult r = drive_ingest(store.get(), &metrics);
      report("sqlite", r, noop_rate);
      sqlite_ratios.push_back(r.summaries / r.seconds / noop_rate);
      printf("  sqlite database after the run: %.1f MiB\n", store->SizeBytes() / 1048576.0);
    }
  }
  if (rounds > 1) {
    auto summary = [](const char* name, std::vector<double> v) {
      std::sort(v.begin(), v.end());
      printf("  %-8s share of noop over %zu rounds: median %.0f%%, min %.0f%%, max %.0f%%\n",
             name, v.size(), 100 * v[v.size() / 2], 100 * v.front(), 100 * v.back());
    };
    summary("nostore", nostore_ratios);
    summary("sqlite", sqlite_ratios);
  }
  if (clickhouse.empty()) return;
  for (int collectors : {1, 2}) {
    std::unique_ptr<Store> first = OpenFresh(clickhouse);
    std::vector<std::unique_ptr<Store>> stores;
    stores.push_back(std::move(first));
    for (int i = 1; i < collectors; ++i) {
      std::unique_ptr<Store> st;
      if (!OpenStore(clickhouse, &st).ok()) abort();
      stores.push_back(std::move(st));
    }
    std::vector<std::unique_ptr<IngestServer>> servers;
    for (auto& st : stores) {
      IngestOptions o;
      o.listen = "127.0.0.1:0";
      servers.push_back(std::make_unique<IngestServer>(st.get(), nullptr, o));
      if (!servers.back()->Start().ok()) abort();
    }
    // Agents alternate between the collectors.
    std::vector<std::string> targets;
    for (int a = 0; a < agents; ++a) {
      targets.push_back("127.0.0.1:" + std::to_string(servers[a % collectors]->port()));
    }
    const double server0 = clickhouse_pid > 0 ? ProcessCpuSeconds(clickhouse_pid) : -1;
    const double self0 = SelfCpuSeconds();
    IngestResult r = Drive(targets, per_agent);
    const double self_cpu = SelfCpuSeconds() - self0;
    report(collectors == 1 ? "clickhouse" : "clickhouse2", r, noop_rate);
    if (server0 >= 0) {
      const double server_cpu = ProcessCpuSeconds(clickhouse_pid) - server0;
      printf("    cpu: clickhouse-server %.2f s (%.0f%% of one core, %.1f ms a summary), this "
             "process %.2f s (%.0f%%), over %.2f s\n",
             server_cpu, 100 * server_cpu / r.seconds, 1000 * server_cpu / r.summaries, self_cpu,
             100 * self_cpu / r.seconds, r.seconds);
    }
    for (auto& srv : servers) srv->Stop();
  }
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

void RunQuery(int services, int hours, int flush_s, int stacks, int queries,
              const std::string& dir, const std::string& clickhouse) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t kSec = 1000000000LL;
  const int per_service = hours * 3600 / flush_s;
  printf("query: %d services x %d h, one summary per %d s per service (%d each), %d stacks\n",
         services, hours, flush_s, per_service, stacks);
  // Each service's summaries vary: 4 variants rotate.
  std::vector<std::vector<SummaryRecord>> variants(services);
  for (int svc = 0; svc < services; ++svc) {
    for (int v = 0; v < 4; ++v) {
      std::string name = "service-" + std::to_string(svc);
      v1::StackSummary sum = ServiceSummary("q", name, kSec, stacks, svc * 10 + v);
      SummaryRecord rec;
      rec.service = name;
      rec.labels = SummaryLabels(sum);
      rec.labels["env"] = svc % 2 ? "prod" : "staging";
      ProfileBuilder b;
      AddSummaryToProfile(sum, &b);
      rec.profile = b.Release();
      variants[svc].push_back(std::move(rec));
    }
  }
  // What one gzip pprof per summary would take (every variant is equally frequent).
  double pprof_bytes_per_sample = 0;
  {
    int64_t bytes = 0, samples = 0;
    for (const auto& vs : variants) {
      for (const auto& rec : vs) {
        bytes += static_cast<int64_t>(EncodePprofGzip(rec.profile).size());
        samples += rec.profile.TotalCount();
      }
    }
    pprof_bytes_per_sample = static_cast<double>(bytes) / samples;
  }
  std::vector<std::pair<std::string, std::string>> engines = {
      {"sqlite", "sqlite:" + dir + "/query/profiles.db"}};
  if (!clickhouse.empty()) engines.emplace_back("clickhouse", clickhouse);
  for (const auto& [engine, uri] : engines) {
    std::unique_ptr<Store> store = OpenFresh(uri);
    // ClickHouse batches concurrent writes into one insert: give it many writers.
    const int threads = engine == "sqlite" ? 2 : 64;
    std::atomic<int64_t> next{0}, total_samples{0};
    const int64_t total = static_cast<int64_t>(services) * per_service;
    auto fill0 = Clock::now();
    std::vector<std::thread> writers;
    for (int w = 0; w < threads; ++w) {
      writers.emplace_back([&] {
        for (int64_t k; (k = next++) < total;) {
          const int svc = static_cast<int>(k % services);
          const int i = static_cast<int>(k / services);
          SummaryRecord rec = variants[svc][i % 4];
          rec.agent_instance_id = "agent-" + std::to_string(svc);
          rec.sequence = i + 1;
          rec.profile.start_unix_nanos = now - (per_service - i) * flush_s * kSec;
          rec.profile.end_unix_nanos = rec.profile.start_unix_nanos + flush_s * kSec;
          total_samples += rec.profile.TotalCount();
          bool dup;
          Status ws = store->Write(rec, &dup);
          if (!ws.ok()) {
            fprintf(stderr, "write: %s\n", ws.ToString().c_str());
            abort();
          }
        }
      });
    }
    for (auto& t : writers) t.join();
    double fill_s = Seconds(fill0, Clock::now());
    const int64_t bytes = store->SizeBytes();
    printf("  %s: filled %lld summaries in %.1f s (%.0f summaries/s via Store::Write, %d "
           "threads); database %.1f MiB\n",
           engine.c_str(), static_cast<long long>(total), fill_s, total / fill_s, threads,
           bytes / 1048576.0);
    printf("  %s: stored bytes per sample %.3f (gzip pprof per summary: %.3f)\n", engine.c_str(),
           static_cast<double>(bytes) / total_samples.load(), pprof_bytes_per_sample);

    std::mt19937 rng(7);
    std::set<std::string> queried;  // a service's first query finds no cache warm
    for (int range_h : {1, 24}) {
      if (range_h > hours) continue;
      std::vector<double> ms, cold_ms;
      int64_t samples = 0;
      size_t distinct = 0;
      for (int q = 0; q < queries; ++q) {
        ProfileQuery pq;
        pq.service = "service-" + std::to_string(rng() % services);
        pq.from_unix_nanos = now - range_h * 3600 * kSec;
        pq.to_unix_nanos = now;
        Profile p;
        auto t0 = Clock::now();
        Status qs = store->Query(pq, &p);
        ms.push_back(Seconds(t0, Clock::now()) * 1000);
        if (queried.insert(pq.service).second) cold_ms.push_back(ms.back());
        if (!qs.ok()) {
          fprintf(stderr, "query: %s\n", qs.ToString().c_str());
          abort();
        }
        samples = p.TotalCount();
        distinct = p.samples.size();
      }
      printf("  %s merged profile over %2d h: p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d "
             "queries; %lld samples, %zu stacks each)\n",
             engine.c_str(), range_h, Percentile(ms, 0.5), Percentile(ms, 0.99),
             Percentile(ms, 1.0), queries, static_cast<long long>(samples), distinct);
      if (!cold_ms.empty()) {
        printf("  %s   of which a service's first query: p50 %.1f ms  p99 %.1f ms  (%zu "
               "queries)\n",
               engine.c_str(), Percentile(cold_ms, 0.5), Percentile(cold_ms, 0.99),
               cold_ms.size());
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"collector ingest throughput and query latency"};
  std::string only;
  int agents = 8, summaries = 200, stacks = 200, services = 50, hours = 24, flush_s = 60,
      qstacks = 100, queries = 100, rounds = 1;
  std::string clickhouse;
  int clickhouse_pid = 0;
  app.add_option("--only", only, "ingest or query");
  app.add_option("--agents", agents);
  app.add_option("--summaries", summaries, "per agent");
  app.add_option("--stacks", stacks, "stacks per summary (ingest)");
  app.add_option("--rounds", rounds,
                 "ingest: run noop, nostore and sqlite this many times; print the median shares");
  app.add_option("--services", services);
  app.add_option("--hours", hours);
  app.add_option("--flush-s", flush_s, "seconds between one service's summaries (query data)");
  app.add_option("--query-stacks", qstacks, "stacks per summary (query data)");
  app.add_option("--queries", queries);
  app.add_option("--clickhouse", clickhouse,
                 "also ingest into and query ClickHouse at this URI (its database is dropped)");
  app.add_option("--clickhouse-pid", clickhouse_pid,
                 "pid of the clickhouse-server behind --clickhouse: report its CPU use");
  CLI11_PARSE(app, argc, argv);
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) == 3) {
    printf("load average at start: %.2f %.2f %.2f (%ld CPUs)\n", load[0], load[1], load[2],
           sysconf(_SC_NPROCESSORS_ONLN));
  }

  char tmpl[] = "/tmp/stackstream-ingest-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  if (only.empty() || only == "ingest") {
    RunIngest(agents, summaries, stacks, rounds, dir, clickhouse, clickhouse_pid);
  }
  if (only.empty() || only == "query") RunQuery(services, hours, flush_s, qstacks, queries, dir, clickhouse);
  std::filesystem::remove_all(dir);
  return 0;
}
