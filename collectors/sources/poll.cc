#include "collectors/sources/poll.h"

#include <httplib.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "collectors/sources/exposition.h"
#include "collectors/sources/prometheus_query.h"
#include "common/file_reader.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

using Clock = std::chrono::steady_clock;

struct HttpAnswer {
  int status = 0;
  std::string body;
  std::string location;  // the Location header, for redirects
  std::string from;      // the URL that answered (after redirects), for messages
};

std::string Trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r\n\v\f");
  if (begin == std::string_view::npos) return "";
  const auto end = s.find_last_not_of(" \t\r\n\v\f");
  return std::string(s.substr(begin, end - begin + 1));
}

// A source's value, password or token file; `error` names the path.
std::optional<std::string> ReadSourceFile(const std::string& path, std::string& error,
                                          bool strict = true) {
  auto data = ReadRegularFile(path, kMaxFileBytes, error, strict);
  if (!data) error = "cannot read " + path + ": " + error;
  return data;
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Describe(const SourceUrl& url, const std::string& path) {
  const auto q = path.find('?');
  return url.SchemeHostPort() + (q == std::string::npos ? path : path.substr(0, q));
}

std::string Explain(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "connection refused or host unreachable";
    case httplib::Error::BindIPAddress:
      return "cannot bind the local address";
    case httplib::Error::Read:
      return "connection closed while reading the response";
    case httplib::Error::Write:
      return "connection closed while sending the request";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the CA certificates";
    case httplib::Error::SSLServerVerification:
      return "TLS server certificate verification failed";
    case httplib::Error::Compression:
      return "cannot decompress the response";
    default:
      return httplib::to_string(error);
  }
}

// Redirects followed within the source's origin before the poll fails.
constexpr int kMaxRedirects = 10;

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Text from a Location header, for an error message: bounded, valid UTF-8.
std::string Shown(std::string_view text) {
  constexpr size_t kMax = 200;
  return ValidUtf8(text.size() > kMax ? std::string(text.substr(0, kMax)) + "..." : text);
}

// One GET of `url` on `client` (the source's origin), ending by `deadline`.
SourceResult<HttpAnswer> GetOnce(httplib::Client& client, const SourceConfig& cfg,
                                 const SourceUrl& url, const httplib::Headers& headers,
                                 Clock::time_point deadline, RequestCanceller* canceller) {
  const std::string where = Shown(Describe(url, url.path));
  const std::string timeout_text = FormatDuration(cfg.timeout);
  // A Cancel() between two hops found no socket to shut down.
  if (canceller && canceller->cancelled()) {
    return SourceError{source_reason::kConnection, "cancelled"};
  }
  // Rounded up: httplib waits whole milliseconds, and a socket timeout that
  // fires before the deadline would read as a connection error.
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) {
    return SourceError{source_reason::kTimeout,
                       "no complete response within " + timeout_text + " from " + where};
  }
  client.set_connection_timeout(left);
  client.set_read_timeout(left);
  client.set_write_timeout(left);
  bool too_large = false;
  bool late = false;
  std::string body;
  httplib::Result result = client.Get(url.path, headers, [&](const char* data, size_t length) {
    if (Clock::now() > deadline) return !(late = true);
    if (body.size() + length > kMaxHttpBodyBytes) return !(too_large = true);
    body.append(data, length);
    return true;
  });
  if (canceller && canceller->cancelled()) {
    return SourceError{source_reason::kConnection, "cancelled"};
  }
  if (too_large) {
    return SourceError{source_reason::kTooLarge, "response from " + where + " is larger than " +
                                                     std::to_string(kMaxHttpBodyBytes) + " bytes"};
  }
  const httplib::Error error = result.error();
  if (late || error == httplib::Error::ConnectionTimeout ||
      (error != httplib::Error::Success && Clock::now() >= deadline)) {
    return SourceError{source_reason::kTimeout,
                       "no complete response within " + timeout_text + " from " + where};
  }
  if (error != httplib::Error::Success || !result) {
    return SourceError{source_reason::kConnection,
                       "request to " + where + " failed: " + Explain(error)};
  }
  return HttpAnswer{result->status, std::move(body), result->get_header_value("Location"), where};
}

// GETs `path`, following redirects within the source's origin only: `client`
// carries the credentials, and another origin must not see them.
SourceResult<HttpAnswer> GetFollowingRedirects(httplib::Client& client, const SourceConfig& cfg,
                                               const std::string& path,
                                               const httplib::Headers& headers,
                                               RequestCanceller* canceller) {
  const bool credentials =
      cfg.basic_auth || !cfg.bearer_token.empty() || !cfg.bearer_token_file.empty();
  // Every hop shares the one deadline.
  const auto deadline = Clock::now() + cfg.timeout;
  SourceUrl url = cfg.url;
  url.path = path;
  std::set<std::string> visited = {url.path};
  for (int redirects = 0;; ++redirects) {
    auto answer = GetOnce(client, cfg, url, headers, deadline, canceller);
    if (!answer.ok() || !IsRedirect(answer.value().status)) return answer;
    const std::string from = Shown(Describe(url, url.path));
    const std::string& location = answer.value().location;
    if (location.empty()) {
      return SourceError{source_reason::kHttpStatus, "HTTP " +
                                                         std::to_string(answer.value().status) +
                                                         " from " + from + " without a Location"};
    }
    std::string why;
    auto next = ResolveLocation(url, location, why);
    if (!next) {
      return SourceError{
          source_reason::kHttpStatus,
          "redirect from " + from + " to \"" + Shown(location) + "\" not followed: " + why};
    }
    const std::string to = Shown(Describe(*next, next->path));
    if (!SameOrigin(*next, cfg.url)) {
      const std::string origin = cfg.url.SchemeHostPort();
      return SourceError{source_reason::kHttpStatus,
                         "redirect from " + from + " to " + to + " not followed: another origin (" +
                             (credentials ? "credentials stay with " + origin
                                          : "redirects are followed only within " + origin) +
                             ")"};
    }
    if (!visited.insert(next->path).second) {
      return SourceError{source_reason::kHttpStatus,
                         "redirect loop: " + from + " redirects back to " + to};
    }
    if (redirects == kMaxRedirects) {
      return SourceError{source_reason::kHttpStatus,
                         "more than " + std::to_string(kMaxRedirects) + " redirects from " +
                             Shown(Describe(cfg.url, path)) + " (the last to " + to + ")"};
    }
    url = std::move(*next);
  }
}

SourceResult<HttpAnswer> HttpGet(const SourceConfig& cfg, const std::string& path,
                                 httplib::Headers headers, RequestCanceller* canceller) {
  httplib::Client client(cfg.url.SchemeHostPort());
  client.set_keep_alive(false);
  // httplib would follow a redirect to any origin and send it our credentials;
  // GetFollowingRedirects follows only those within the source's origin.
  client.set_follow_location(false);
  if (cfg.basic_auth) {
    std::string password = cfg.basic_auth->password;
    if (!cfg.basic_auth->password_file.empty()) {
      std::string error;
      auto secret = ReadSourceFile(cfg.basic_auth->password_file, error);
      if (!secret) return SourceError{source_reason::kRead, "password_file: " + error};
      password = Trim(*secret);
    }
    client.set_basic_auth(cfg.basic_auth->username, password);
  }
  if (!cfg.bearer_token.empty()) client.set_bearer_token_auth(cfg.bearer_token);
  if (!cfg.bearer_token_file.empty()) {
    std::string error;
    auto secret = ReadSourceFile(cfg.bearer_token_file, error);
    if (!secret) return SourceError{source_reason::kRead, "bearer_token_file: " + error};
    client.set_bearer_token_auth(Trim(*secret));
  }
  if (cfg.url.scheme == "https") {
    if (!cfg.tls.ca_file.empty()) client.set_ca_cert_path(cfg.tls.ca_file);
    client.enable_server_certificate_verification(!cfg.tls.insecure_skip_verify);
  }
  headers.emplace("User-Agent", "virtscale");

  if (canceller && !canceller->Attach(&client)) {
    return SourceError{source_reason::kConnection, "cancelled"};
  }
  auto answer = GetFollowingRedirects(client, cfg, path, headers, canceller);
  if (canceller) canceller->Detach();
  return answer;
}

SourceError HttpStatusError(const HttpAnswer& answer) {
  return {source_reason::kHttpStatus,
          "HTTP " + std::to_string(answer.status) + " from " + answer.from};
}

bool Is2xx(int status) { return status >= 200 && status < 300; }

std::string JoinPath(const std::string& base, std::string_view tail) {
  std::string out = base;
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out + std::string(tail);
}

SourceResult<double> PollPrometheus(const SourceConfig& cfg, RequestCanceller* canceller) {
  const std::string path =
      JoinPath(cfg.url.path, "/api/v1/query?query=") + PercentEncode(cfg.query);
  auto answer = HttpGet(cfg, path, {{"Accept", "application/json"}}, canceller);
  if (!answer.ok()) return answer.error();
  auto parsed = ParsePrometheusQueryResponse(answer.value().body);
  if (Is2xx(answer.value().status)) return parsed;
  // Prometheus answers bad queries with 400/422 and a JSON error worth showing.
  if (!parsed.ok() && parsed.error().reason == source_reason::kQueryError) {
    return SourceError{source_reason::kQueryError, "HTTP " + std::to_string(answer.value().status) +
                                                       ": " + parsed.error().message};
  }
  return HttpStatusError(answer.value());
}

SourceResult<double> PollScrape(const SourceConfig& cfg, RequestCanceller* canceller) {
  auto answer =
      HttpGet(cfg, cfg.url.path, {{"Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1"}}, canceller);
  if (!answer.ok()) return answer.error();
  if (!Is2xx(answer.value().status)) return HttpStatusError(answer.value());
  auto samples = ParseExposition(answer.value().body);
  if (!samples.ok()) {
    return SourceError{source_reason::kParse, answer.value().from + ": " + samples.error().message};
  }
  return SelectSample(samples.value(), cfg.metric, cfg.labels, cfg.sum);
}

SourceResult<double> PollFile(const SourceConfig& cfg) {
  std::string error;
  auto data = ReadSourceFile(cfg.path, error, /*strict=*/false);
  if (!data) return SourceError{source_reason::kRead, error};
  if (data->size() > kMaxFileBytes) {
    return SourceError{source_reason::kParse,
                       cfg.path + ": larger than " + std::to_string(kMaxFileBytes) + " bytes"};
  }
  const std::string text = Trim(*data);
  if (text.empty()) return SourceError{source_reason::kParse, cfg.path + ": file is empty"};
  auto value = ParsePrometheusFloat(text);
  if (!value) {
    const std::string shown = text.size() > 40 ? text.substr(0, 40) + "..." : text;
    return SourceError{source_reason::kParse, cfg.path + ": not a number: \"" + shown + "\""};
  }
  return CheckFinite(*value, cfg.path);
}

}  // namespace

void RequestCanceller::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (client_) client_->stop();  // shuts the socket down under the request's feet
}

bool RequestCanceller::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

bool RequestCanceller::Attach(httplib::Client* client) {
  std::lock_guard lock(mu_);
  if (cancelled_) return false;
  client_ = client;
  return true;
}

void RequestCanceller::Detach() {
  std::lock_guard lock(mu_);
  client_ = nullptr;
}

SourceResult<double> PollSource(const SourceConfig& config, RequestCanceller* canceller) {
  try {
    switch (config.type) {
      case SourceType::kPrometheus:
        return PollPrometheus(config, canceller);
      case SourceType::kScrape:
        return PollScrape(config, canceller);
      case SourceType::kFile:
        return PollFile(config);
    }
  } catch (const std::exception& e) {  // httplib and std can throw (bad_alloc, ...)
    return SourceError{source_reason::kConnection, std::string("unexpected error: ") + e.what()};
  }
  return SourceError{source_reason::kConnection, "unknown source type"};
}

}  // namespace virtscale
