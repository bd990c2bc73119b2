// stackstream-collector: receives summary streams over gRPC (IngestServer),
// stores them (Store, "--storage"), serves queries over HTTP (HttpServer) and
// deletes data older than "--retention" in the background.
//
// Exit status: 0 after a clean shutdown (SIGINT/SIGTERM); 2 when a flag is
// bad or the storage, a listen address or a TLS/token file cannot be used.
// Logs go to stderr. Once started it logs one line:
//   "serving grpc=HOST:PORT http=HOST:PORT storage=URI"
// with the bound ports (useful with port 0).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include "http/http_server.h"
#include "ingest/ingest_server.h"
#include "metrics.h"
#include "storage/store.h"

namespace {

using stackstream::Status;
using namespace stackstream::collector;

constexpr int kExitBadConfig = 2;

// "30s", "15m", "12h", "7d" -> nanoseconds. False when malformed.
bool ParseDuration(const std::string& text, int64_t* nanos) {
  if (text.size() < 2) return false;
  const char unit = text.back();
  const std::string digits = text.substr(0, text.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c); })) {
    return false;
  }
  int64_t seconds_per_unit;
  switch (unit) {
    case 's': seconds_per_unit = 1; break;
    case 'm': seconds_per_unit = 60; break;
    case 'h': seconds_per_unit = 3600; break;
    case 'd': seconds_per_unit = 86400; break;
    default: return false;
  }
  if (digits.size() > 9) return false;
  int64_t n = std::stoll(digits);
  if (n <= 0) return false;
  *nanos = n * seconds_per_unit * 1000000000LL;
  return true;
}

bool ReadToken(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read --auth-token-file " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  t.erase(t.begin(), std::find_if(t.begin(), t.end(), not_space));
  t.erase(std::find_if(t.rbegin(), t.rend(), not_space).base(), t.end());
  if (t.empty()) {
    *error = "--auth-token-file " + path + " is empty";
    return false;
  }
  *token = t;
  return true;
}

std::string HostOf(const std::string& listen) {
  auto colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

// Calls store->DeleteBefore(now - retention) at start and every "interval"
// until stopped.
class RetentionLoop {
 public:
  RetentionLoop(Store* store, int64_t retention_nanos)
      : store_(store), retention_nanos_(retention_nanos) {
    int64_t interval_s = std::clamp<int64_t>(retention_nanos / 10 / 1000000000LL, 1, 300);
    interval_ = std::chrono::seconds(interval_s);
    thread_ = std::thread([this] { Run(); });
  }
  ~RetentionLoop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      l.unlock();
      auto start = std::chrono::steady_clock::now();
      int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      Status s = store_->DeleteBefore(now - retention_nanos_);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            start)
                      .count();
      if (!s.ok()) {
        spdlog::error("retention: {}", s.ToString());
      } else {
        spdlog::debug("retention pass took {:.1f} ms; storage is {} bytes", ms,
                      store_->SizeBytes());
      }
      l.lock();
      cv_.wait_for(l, interval_, [this] { return stop_; });
    }
  }

  Store* const store_;
  const int64_t retention_nanos_;
  std::chrono::seconds interval_{300};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace

// The web UI installed beside the binary: BIN/../share/stackstream/ui (the
// install layout, and the build tree's layout too). Empty when absent.
std::string DefaultUiDir() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "";
  std::string path(exe, static_cast<size_t>(n));
  std::string bin = path.substr(0, path.rfind('/'));
  std::string dir = bin + "/../share/stackstream/ui";
  struct stat st;
  if (stat((dir + "/index.html").c_str(), &st) != 0) return "";
  return dir;
}

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("collector");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"stackstream-collector: receives, stores and serves stack summaries"};
  std::string grpc_listen = "127.0.0.1:7433";
  std::string http_listen = "127.0.0.1:7434";
  std::string storage = "sqlite:./stackstream-data/profiles.db";
  std::string retention = "7d";
  std::string token_file, tls_cert, tls_key;
  std::string log_level = "info";
  std::string ui_dir;
  app.add_option("--grpc-listen", grpc_listen, "gRPC ingest address (host:port)")
      ->capture_default_str();
  app.add_option("--http-listen", http_listen, "HTTP API address (host:port)")
      ->capture_default_str();
  app.add_option("--storage", storage,
                 "storage URI: sqlite:PATH or clickhouse://HOST:PORT[,HOST:PORT...]/DATABASE"
                 "[?user=&password=&cluster=]")
      ->capture_default_str();
  app.add_option("--retention", retention, "delete data older than this (30s, 15m, 12h, 7d)")
      ->capture_default_str();
  app.add_option("--auth-token-file", token_file,
                 "file holding the bearer token that ingest and queries require");
  app.add_option("--tls-cert", tls_cert, "PEM certificate: serve gRPC and HTTP over TLS");
  app.add_option("--tls-key", tls_key, "PEM private key for --tls-cert");
  app.add_option("--ui-dir", ui_dir,
                 "directory of the web UI served at /ui/ (default: ../share/stackstream/ui "
                 "beside this binary, when present)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitBadConfig;
  }

  auto fail = [](const std::string& msg) {
    spdlog::critical("{}", msg);
    return kExitBadConfig;
  };
  spdlog::level::level_enum level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    return fail("bad --log-level \"" + log_level + "\": expected trace, debug, info, warn, " +
                "error, critical or off");
  }
  spdlog::set_level(level);
  int64_t retention_nanos = 0;
  if (!ParseDuration(retention, &retention_nanos)) {
    return fail("bad --retention \"" + retention + "\": expected a positive number with s, m, " +
                "h or d (e.g. 7d)");
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return fail("--tls-cert and --tls-key must be given together");
  }
  std::string token;
  if (!token_file.empty()) {
    std::string error;
    if (!ReadToken(token_file, &token, &error)) return fail(error);
  }

  // Signals are taken synchronously by this thread (sigwait); block them
  // before any other thread starts so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<Store> store;
  // The URI as logged: a password in it is not.
  const std::string shown_storage = std::regex_replace(storage, std::regex("password=[^&]*"),
                                                       "password=***");
  Status s = OpenStore(storage, &store);
  if (!s.ok()) return fail("cannot open --storage " + shown_storage + ": " + s.ToString());

  Metrics metrics;
  IngestOptions ingest_options;
  ingest_options.listen = grpc_listen;
  ingest_options.auth_token = token;
  ingest_options.tls_cert = tls_cert;
  ingest_options.tls_key = tls_key;
  IngestServer ingest(store.get(), &metrics, ingest_options);
  s = ingest.Start();
  if (!s.ok()) return fail("cannot start gRPC ingest on " + grpc_listen + ": " + s.ToString());

  if (ui_dir.empty()) {
    ui_dir = DefaultUiDir();
    if (ui_dir.empty()) spdlog::warn("no web UI found beside the binary; /ui/ is not served");
  } else {
    struct stat st;
    if (stat((ui_dir + "/index.html").c_str(), &st) != 0) {
      return fail("--ui-dir " + ui_dir + " has no index.html");
    }
  }
  HttpOptions http_options;
  http_options.ui_dir = ui_dir;
  http_options.listen = http_listen;
  http_options.auth_token = token;
  http_options.tls_cert = tls_cert;
  http_options.tls_key = tls_key;
  HttpServer http(store.get(), &metrics, http_options);
  s = http.Start();
  if (!s.ok()) {
    ingest.Stop(0);
    return fail("cannot start HTTP on " + http_listen + ": " + s.ToString());
  }

  {
    RetentionLoop retention_loop(store.get(), retention_nanos);
    spdlog::info("serving grpc={}:{} http={}:{} storage={} retention={}{}{}",
                 HostOf(grpc_listen), ingest.port(), HostOf(http_listen), http.port(), shown_storage,
                 retention, token.empty() ? "" : " auth=on", tls_cert.empty() ? "" : " tls=on");

    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ingest.Stop(2000);  // in-flight summaries are stored and acknowledged first
    http.Stop();
  }
  store.reset();
  spdlog::info("stopped");
  return 0;
}
