#include "http/http_server.h"

#include <httplib.h>

#include <chrono>
#include <exception>
#include <functional>
#include <set>
#include <thread>

#include "http/api_handlers.h"
#include "http/elastic_pool.h"
#include "http/http_reply.h"
#include "http/time_parse.h"
#include "pyroscope/routes.h"

namespace stackstream {
namespace collector {

namespace {

// Largest request body accepted (legacy ingest uploads).
constexpr size_t kMaxBodyBytes = 32 << 20;

// Splits "host:port", "[v6]:port" or ":port".
Status SplitHostPort(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("http listen address \"" + listen + "\" needs host:port");
  }
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (host->empty()) *host = "0.0.0.0";
  const std::string p = listen.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("http listen address \"" + listen + "\": bad port");
  }
  *port = std::stoi(p);
  if (*port > 65535) {
    return Status::InvalidArgument("http listen address \"" + listen + "\": bad port");
  }
  return Status::OK();
}

// The UI's static files and the redirects to them: public (they hold no
// data; the API calls they make need the token).
bool IsUiPath(const std::string& path) {
  if (path.find("..") != std::string::npos) return false;
  return path == "/" || path == "/ui" || path.rfind("/ui/", 0) == 0 || path == "/speedscope" ||
         path.rfind("/speedscope/", 0) == 0;
}

// Debian's cpp-httplib compresses a reply with brotli at its slowest
// quality whenever the client accepts "br" (every browser): a 2.6 MB JSON
// reply took 15 s. Such clients get gzip (fast) instead.
void AcceptGzipNotBrotli(const httplib::Request& req) {
  // The server owns the request and reads the header only after routing.
  auto& headers = const_cast<httplib::Headers&>(req.headers);
  auto it = headers.find("Accept-Encoding");
  if (it == headers.end() || it->second.find("br") == std::string::npos) return;
  it->second = it->second.find("gzip") != std::string::npos ? "gzip" : "identity";
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  }
  return diff == 0 && !b.empty();
}

void Apply(const HttpReply& reply, httplib::Response* res) {
  res->status = reply.status;
  for (const auto& [k, v] : reply.headers) res->set_header(k, v);
  res->set_content(reply.body, reply.content_type);
}

}  // namespace

struct HttpServer::Impl {
  Impl(Store* s, Metrics* m, HttpOptions o)
      : store(s), metrics(m), options(std::move(o)), api(s), pyroscope(s, m) {}

  // Runs "fn" for "endpoint", timing it and turning any exception into 500.
  template <typename Fn>
  void Serve(const std::string& endpoint, httplib::Response& res, Fn fn) {
    const auto start = std::chrono::steady_clock::now();
    HttpReply reply;
    try {
      reply = fn();
    } catch (const std::exception& e) {
      reply = ErrorReply(500, std::string("internal error: ") + e.what());
    } catch (...) {
      reply = ErrorReply(500, "internal error");
    }
    Apply(reply, &res);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (metrics != nullptr) metrics->ObserveQuery(endpoint, seconds);
  }

  void Route();
  void ServeUi();
  bool Authorized(const httplib::Request& req) const;

  Store* const store;
  Metrics* const metrics;
  const HttpOptions options;
  ApiHandlers api;
  PyroscopeRoutes pyroscope;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
};

bool HttpServer::Impl::Authorized(const httplib::Request& req) const {
  if (options.auth_token.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  static const std::string kPrefix = "Bearer ";
  if (header.size() <= kPrefix.size() || header.compare(0, kPrefix.size(), kPrefix) != 0) {
    return false;
  }
  return ConstantTimeEquals(header.substr(kPrefix.size()), options.auth_token);
}

void HttpServer::Impl::Route() {
  httplib::Server& s = *server;
  s.set_payload_max_length(kMaxBodyBytes);
  // A stalled header or body read ends the request with a 400 after
  // kHttpReadTimeoutSeconds; an idle keep-alive connection is closed after
  // kHttpKeepAliveSeconds. Each open connection holds one pool worker.
  s.new_task_queue = [] {
    return new ElasticPool(kMaxHttpThreads, std::chrono::seconds(30));
  };
  s.set_read_timeout(kHttpReadTimeoutSeconds, 0);
  s.set_write_timeout(30, 0);
  s.set_keep_alive_timeout(kHttpKeepAliveSeconds);
  s.set_keep_alive_max_count(1000);

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    AcceptGzipNotBrotli(req);
    if (req.path == "/healthz" || IsUiPath(req.path) || Authorized(req)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (metrics != nullptr) metrics->Rejected("http_unauthenticated");
    res.set_header("WWW-Authenticate", "Bearer realm=\"stackstream\"");
    if (req.path.rfind("/querier.v1.", 0) == 0 || req.path.rfind("/settings.v1.", 0) == 0) {
      res.status = 401;
      res.set_content(R"({"code":"unauthenticated","message":"missing or invalid bearer token"})",
                      "application/json");
    } else {
      Apply(ErrorReply(401, "missing or invalid bearer token (Authorization: Bearer ...)"), &res);
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string what = res.status == 404   ? "no such endpoint: " + req.path
                       : res.status == 405 ? "method not allowed"
                       : res.status == 413 ? "request body too large"
                       : res.status == 414 ? "request URI too long"
                                           : "bad request";
    Apply(ErrorReply(res.status, what), &res);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what += std::string(": ") + e.what();
        } catch (...) {
        }
        Apply(ErrorReply(500, what), &res);
      });

  // Ready when the storage is: a ClickHouse store whose server is away
  // answers 503 (load balancers then send agents to another collector).
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    Status st = store != nullptr ? store->Health() : Status::OK();
    if (!st.ok()) {
      res.status = 503;
      res.set_content("storage not ready: " + st.message() + "\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Serve("metrics", res, [&] {
      HttpReply reply;
      reply.content_type = "text/plain; version=0.0.4; charset=utf-8";
      reply.body = metrics != nullptr ? metrics->RenderPrometheus(store->SizeBytes()) : "";
      return reply;
    });
  });
  s.Get("/api/v1/services", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("services", res, [&] { return api.Services(req.params); });
  });
  s.Get("/api/v1/profile", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("profile", res, [&] { return api.Profile(req.params, NowUnixNanos()); });
  });
  s.Get("/api/v1/top", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("top", res, [&] { return api.Top(req.params, NowUnixNanos()); });
  });
  s.Get("/api/v1/counters", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("counters", res, [&] { return api.Counters(req.params, NowUnixNanos()); });
  });
  s.Get("/api/v1/diff", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("diff", res, [&] { return api.Diff(req.params, NowUnixNanos()); });
  });
  s.Get("/api/v1/series", [this](const httplib::Request& req, httplib::Response& res) {
    Serve("series", res, [&] { return api.Series(req.params, NowUnixNanos()); });
  });
  // Grafana's Pyroscope data source, Profiles Drilldown, legacy ingest.
  pyroscope.Register(&s, [this](const std::string& endpoint, httplib::Response& res,
                                const std::function<HttpReply()>& handler) {
    Serve(endpoint, res, handler);
  });
  ServeUi();
}

void HttpServer::Impl::ServeUi() {
  httplib::Server& s = *server;
  const std::string& dir = options.ui_dir;
  auto redirect = [](const char* to) {
    return [to](const httplib::Request& req, httplib::Response& res) {
      std::string location = to;
      if (!req.params.empty()) {
        location += "?";
        bool first = true;
        for (const auto& [k, v] : req.params) {
          if (!first) location += "&";
          first = false;
          location += httplib::detail::encode_query_param(k) + "=" +
                      httplib::detail::encode_query_param(v);
        }
      }
      res.set_redirect(location, 302);
    };
  };
  if (dir.empty()) {
    s.Get("/", [](const httplib::Request&, httplib::Response& res) {
      Apply(ErrorReply(404, "this collector serves no web UI (start it with --ui-dir DIR)"),
            &res);
    });
    return;
  }
  // Tells the UI whether to ask for the token before its first API call.
  s.Get("/ui/auth", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(options.auth_token.empty() ? "{\"token_required\":false}\n"
                                               : "{\"token_required\":true}\n",
                    "application/json");
  });
  s.Get("/", redirect("/ui/"));
  s.Get("/ui", redirect("/ui/"));
  s.Get("/speedscope", redirect("/speedscope/"));
  const httplib::Headers headers = {{"Cache-Control", "no-cache"},
                                    {"X-Content-Type-Options", "nosniff"}};
  s.set_mount_point("/speedscope", dir + "/speedscope", headers);
  s.set_mount_point("/ui", dir, headers);
  s.set_file_extension_and_mimetype_mapping("wasm", "application/wasm");
  s.set_file_extension_and_mimetype_mapping("woff2", "font/woff2");
  s.set_file_extension_and_mimetype_mapping("ico", "image/x-icon");
}

HttpServer::HttpServer(Store* store, Metrics* metrics, HttpOptions options)
    : impl_(std::make_unique<Impl>(store, metrics, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  if (impl_->server) return Status::Internal("http server already started");
  std::string host;
  int port = 0;
  Status s = SplitHostPort(impl_->options.listen, &host, &port);
  if (!s.ok()) return s;
  const HttpOptions& o = impl_->options;
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return Status::InvalidArgument("TLS needs both a certificate and a key");
  }
  if (!o.tls_cert.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
    if (!ssl->is_valid()) {
      return Status::InvalidArgument("cannot load TLS certificate \"" + o.tls_cert +
                                     "\" / key \"" + o.tls_key + "\"");
    }
    impl_->server = std::move(ssl);
  } else {
    impl_->server = std::make_unique<httplib::Server>();
  }
  impl_->Route();
  if (port == 0) {
    port = impl_->server->bind_to_any_port(host);
    if (port <= 0) port = -1;
  } else if (!impl_->server->bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    impl_->server.reset();
    return Status::Unavailable("cannot listen on " + o.listen + " (http)");
  }
  impl_->port = port;
  httplib::Server* server = impl_->server.get();
  impl_->thread = std::thread([server] { server->listen_after_bind(); });
  return Status::OK();
}

void HttpServer::Stop() {
  if (!impl_ || !impl_->server) return;
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->server.reset();
}

int HttpServer::port() const { return impl_->port; }

}  // namespace collector
}  // namespace stackstream
