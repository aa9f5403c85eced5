#include "agent/http_server.h"

#include <openssl/ssl.h>

#include <chrono>
#include <stdexcept>

#include "common/log.h"

namespace virtscale {
namespace {

int TlsVersion(const std::string& name) {
  if (name == "TLS10") return TLS1_VERSION;
  if (name == "TLS11") return TLS1_1_VERSION;
  if (name == "TLS13") return TLS1_3_VERSION;
  return TLS1_2_VERSION;
}

// Accepts any client certificate (RequireAnyClientCert / RequestClientCert).
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

bool SetupTls(SSL_CTX& ctx, const TlsServerConfig& tls, std::string& error) {
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file.c_str()) != 1) {
    error = "cannot load cert_file " + tls.cert_file;
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    error = "cannot load key_file " + tls.key_file + " (or it does not match the certificate)";
    return false;
  }
  SSL_CTX_set_min_proto_version(&ctx, TlsVersion(tls.min_version));
  if (!tls.max_version.empty()) SSL_CTX_set_max_proto_version(&ctx, TlsVersion(tls.max_version));

  const std::string& type = tls.client_auth_type;
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
      error = "cannot load client_ca_file " + tls.client_ca_file;
      return false;
    }
    SSL_CTX_set_client_CA_list(&ctx, SSL_load_client_CA_file(tls.client_ca_file.c_str()));
  }
  if (type == "RequestClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, AcceptAnyCertificate);
  } else if (type == "RequireAnyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       AcceptAnyCertificate);
  } else if (type == "VerifyClientCertIfGiven") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  } else if (type == "RequireAndVerifyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
  }
  return true;
}

}  // namespace

std::optional<ListenAddress> ParseListenAddress(const std::string& text) {
  ListenAddress out;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    out.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) return std::nullopt;  // v6 needs brackets
  }
  if (out.host.empty()) out.host = "0.0.0.0";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  out.port = std::stoi(port);
  if (out.port > 65535) return std::nullopt;
  return out;
}

HttpServer::HttpServer(HttpLimits limits, const WebConfig& web,
                       prometheus::Registry& metrics_registry)
    : limits_(limits),
      auth_(web.basic_auth_users),
      requests_(prometheus::BuildCounter()
                    .Name("virtscale_http_requests_total")
                    .Help("HTTP requests served, by handler and status code.")
                    .Register(metrics_registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("virtscale_http_request_duration_seconds")
                     .Help("Time to serve an HTTP request, by handler.")
                     .Register(metrics_registry)) {
  if (web.tls) {
    std::string error;
    const TlsServerConfig tls = *web.tls;
    server_ = std::make_unique<httplib::SSLServer>(
        [&](SSL_CTX& ctx) { return SetupTls(ctx, tls, error); });
    if (!server_->is_valid()) throw std::runtime_error("TLS setup failed: " + error);
    tls_ = true;
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const size_t threads = limits_.max_concurrent;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_read_timeout(limits_.read_timeout);
  server_->set_write_timeout(limits_.write_timeout);
  server_->set_payload_max_length(limits_.max_request_bytes);
  server_->set_keep_alive_max_count(limits_.keep_alive_max_count);
  server_->set_keep_alive_timeout(5);
  server_->set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                                    std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("HTTP handler failed", {{"path", req.path}, {"err", what}});
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
  });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      res.set_content(res.status == 404 ? "404 page not found\n" : "request failed\n",
                      "text/plain");
  });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const std::string& method, const std::string& path, Handler handler) {
  auto wrapped = [this, path, handler = std::move(handler)](const httplib::Request& req,
                                                            httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    if (auth_.enabled() && !auth_.Check(req.get_header_value("Authorization"))) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"virtscale\"");
      res.set_content("Unauthorized\n", "text/plain");
    } else {
      handler(req, res);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // httplib fills in 200 only after the handler returns.
    const int code = res.status == -1 ? 200 : res.status;
    requests_.Add({{"handler", path}, {"code", std::to_string(code)}}).Increment();
    durations_
        .Add({{"handler", path}},
             prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1, 0.25, 0.5, 1, 2.5, 5})
        .Observe(seconds);
  };
  if (method == "GET") {
    server_->Get(path, wrapped);
  } else {
    server_->Post(path, wrapped);
  }
}

void HttpServer::Get(const std::string& path, Handler handler) {
  Route("GET", path, std::move(handler));
}
void HttpServer::Post(const std::string& path, Handler handler) {
  Route("POST", path, std::move(handler));
}

std::optional<std::string> HttpServer::Bind(const std::string& listen_address) {
  auto addr = ParseListenAddress(listen_address);
  if (!addr) return "invalid listen address \"" + listen_address + "\" (want HOST:PORT or :PORT)";
  if (addr->port == 0) {
    port_ = server_->bind_to_any_port(addr->host);
    if (port_ <= 0) return "listen tcp " + listen_address + ": cannot bind";
  } else {
    if (!server_->bind_to_port(addr->host, addr->port))
      return "listen tcp " + listen_address + ": cannot bind (address already in use?)";
    port_ = addr->port;
  }
  return std::nullopt;
}

void HttpServer::Start() {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace virtscale
