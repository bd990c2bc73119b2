// A real HttpServer over a real SqliteStore holding a known data set, for
// the Python HTTP/CLI tests (test_http_api.py). Usage:
//   http_test_server --db DIR [--token T] [--tls-cert F --tls-key F]
// Writes the fixture through Store::Write with windows relative to now,
// prints "PORT <n>" and serves until stdin closes.
//
// Fixture (period 10 ms, module /usr/bin/<service>):
//   api {env=prod,host=h1} at now-10m:  main;foo;bar 3  main;foo 1  main;baz 2
//   api {env=dev,host=h2}  at now-10m:  main;qux 5
//   api {env=prod,host=h1} at now-2h:   main;foo;bar 1  main;baz 9
//   worker {env=prod}      at now-5m:   main;loop;work 10  main;op;er"ator\n 2 (one frame)
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

#include "http/http_server.h"
#include "http/time_parse.h"
#include "metrics.h"
#include "storage/store.h"

using namespace stackstream;
using namespace stackstream::collector;

namespace {

constexpr int64_t kS = 1000000000;

SummaryRecord Record(const std::string& instance, uint64_t seq, const std::string& service,
                     Labels labels, int64_t start,
                     const std::vector<std::pair<std::vector<std::string>, int64_t>>& stacks) {
  SummaryRecord r;
  r.agent_instance_id = instance;
  r.sequence = seq;
  r.service = service;
  labels["service"] = service;
  r.labels = labels;
  ProfileBuilder b;
  Profile* p = b.mutable_profile();
  p->mode = "cpu";
  p->period_nanos = 10000000;
  p->start_unix_nanos = start;
  p->end_unix_nanos = start + 10 * kS;
  for (const auto& [names, count] : stacks) {
    std::vector<uint32_t> frames;
    for (size_t d = names.size(); d-- > 0;) {
      Frame f;
      f.function = names[d];
      f.file = "src/" + service + ".cc";
      f.line = static_cast<int64_t>(10 * (d + 1));
      f.module = "/usr/bin/" + service;
      f.build_id = "0123abcd";
      frames.push_back(b.InternFrame(f));
    }
    b.AddSample(frames, count);
  }
  r.profile = b.Release();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, token, cert, key;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--db") db = argv[i + 1];
    if (a == "--token") token = argv[i + 1];
    if (a == "--tls-cert") cert = argv[i + 1];
    if (a == "--tls-key") key = argv[i + 1];
  }
  std::unique_ptr<Store> store;
  Status s = OpenStore("sqlite:" + db + "/profiles.db", &store);
  if (!s.ok()) {
    std::cerr << "open store: " << s.ToString() << "\n";
    return 1;
  }
  const int64_t now = NowUnixNanos();
  const int64_t t_recent = now - 600 * kS, t_old = now - 7200 * kS, t_worker = now - 300 * kS;
  std::vector<SummaryRecord> records = {
      Record("a1", 1, "api", {{"env", "prod"}, {"host", "h1"}}, t_recent,
             {{{"main", "foo", "bar"}, 3}, {{"main", "foo"}, 1}, {{"main", "baz"}, 2}}),
      Record("a2", 1, "api", {{"env", "dev"}, {"host", "h2"}}, t_recent, {{{"main", "qux"}, 5}}),
      Record("a1", 2, "api", {{"env", "prod"}, {"host", "h1"}}, t_old,
             {{{"main", "foo", "bar"}, 1}, {{"main", "baz"}, 9}}),
      Record("w1", 1, "worker", {{"env", "prod"}}, t_worker,
             {{{"main", "loop", "work"}, 10}, {{"main", "op;er\"ator\n"}, 2}}),
  };
  for (const auto& r : records) {
    bool dup = false;
    s = store->Write(r, &dup);
    if (!s.ok()) {
      std::cerr << "write: " << s.ToString() << "\n";
      return 1;
    }
  }
  Metrics metrics;
  metrics.SummaryIngested(5, 1000);
  metrics.Rejected("invalid");
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.auth_token = token;
  options.tls_cert = cert;
  options.tls_key = key;
  HttpServer server(store.get(), &metrics, options);
  s = server.Start();
  if (!s.ok()) {
    std::cerr << "start: " << s.ToString() << "\n";
    return 1;
  }
  std::printf("PORT %d\n", server.port());
  std::fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  server.Stop();
  return 0;
}
