#include "common/http_client.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <set>
#include <thread>

#include "common/utf8.h"

namespace virtscale {

// httplib::Client::stop() locks the client's socket mutex partly inside the
// uninstrumented library; tests/tsan.supp names this function for it, so it
// stays out of line and out of the anonymous namespace.
[[gnu::noinline]] void StopHttplibClient(httplib::Client& client) { client.stop(); }

namespace {

using Clock = std::chrono::steady_clock;

// Text from a URL or a Location header, for a message: bounded, valid UTF-8,
// without the query.
std::string Shown(std::string_view text) {
  constexpr size_t kMax = 200;
  return ValidUtf8(text.size() > kMax ? std::string(text.substr(0, kMax)) + "..." : text);
}

std::string Describe(const HttpUrl& url) {
  return Shown(url.SchemeHostPort() + url.path.substr(0, url.path.find('?')));
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

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Stops `client` at `deadline`, and then every kRestop until destroyed: a
// stop() that comes while httplib holds no socket (between hops, before the
// connection is made) has nothing to shut down.
class Watchdog {
 public:
  Watchdog(httplib::Client& client, Clock::time_point deadline)
      : thread_([this, &client, deadline] { Run(client, deadline); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool fired() const {
    std::lock_guard lock(mu_);
    return fired_;
  }

 private:
  static constexpr auto kRestop = std::chrono::milliseconds(50);

  void Run(httplib::Client& client, Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, deadline, [this] { return done_; })) return;
    fired_ = true;
    while (!done_) {
      lock.unlock();
      StopHttplibClient(client);  // may wait for a connect in progress; its timeouts bound it
      lock.lock();
      cv_.wait_for(lock, kRestop, [this] { return done_; });
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: it starts once the members above exist
};

struct Hop {
  int status = 0;
  std::string body;
  std::string location;
};

// What differs between HttpGet and HttpPost; everything else is one path.
struct Method {
  const char* name;          // "GET", "POST"
  const std::string* body;   // POST only
  std::string content_type;  // POST only
  bool follow_redirects;
};

// One request: the client on the URL's origin, its one deadline, the hops.
class Request {
 public:
  Request(const HttpUrl& url, const Method& method, const HttpRequestOptions& options)
      : origin_(url),
        method_(method),
        options_(options),
        deadline_(Clock::now() + options.timeout),
        client_(url.SchemeHostPort()) {
    client_.set_keep_alive(false);
    // httplib would follow a redirect to any origin and send it the
    // credentials; Run() follows only those within the origin.
    client_.set_follow_location(false);
    if (options.basic_auth) {
      client_.set_basic_auth(options.basic_auth->username, options.basic_auth->password);
    }
    if (options.bearer_token) client_.set_bearer_token_auth(*options.bearer_token);
    if (url.scheme == "https") {
      if (!options.ca_file.empty()) client_.set_ca_cert_path(options.ca_file);
      client_.enable_server_certificate_verification(options.verify_certificate);
    }
  }

  HttpResult Run(const HttpClientHeaders& headers) {
    httplib::Headers sent(headers.begin(), headers.end());
    if (!sent.count("User-Agent")) sent.emplace("User-Agent", "virtscale");
    if (!method_.content_type.empty() && !sent.count("Content-Type"))
      sent.emplace("Content-Type", method_.content_type);
    RequestCanceller* canceller = options_.canceller;
    if (canceller && !canceller->Attach(&client_)) return Cancelled();
    struct Detach {
      RequestCanceller* canceller;
      ~Detach() {
        if (canceller) canceller->Detach();
      }
    } detach{canceller};
    Watchdog watchdog(client_, deadline_);  // stopped before the canceller lets go
    return FollowRedirects(sent, watchdog);
  }

 private:
  static HttpError Cancelled() { return {HttpErrorKind::kCancelled, "cancelled"}; }
  HttpError Timeout(const HttpUrl& url) const {
    return {HttpErrorKind::kTimeout, "no complete response within " +
                                         FormatDuration(options_.timeout) + " from " +
                                         Describe(url)};
  }
  bool cancelled() const { return options_.canceller && options_.canceller->cancelled(); }

  Result<Hop, HttpError> SendOnce(const HttpUrl& url, const httplib::Headers& headers,
                                  const Watchdog& watchdog) {
    // A Cancel() between two hops found no socket to shut down.
    if (cancelled()) return Cancelled();
    // Rounded up: httplib waits whole milliseconds, and a socket timeout that
    // fires before the deadline would read as a connection error.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (left.count() <= 0 || watchdog.fired()) return Timeout(url);
    // They bound the connect, which stop() cannot interrupt.
    client_.set_connection_timeout(left);
    client_.set_read_timeout(left);
    client_.set_write_timeout(left);
    bool too_large = false;
    bool late = false;
    std::string body;
    httplib::Request req;
    req.method = method_.name;
    req.path = url.path;
    req.headers = headers;
    if (method_.body) req.body = *method_.body;
    req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      if (Clock::now() > deadline_) return !(late = true);
      if (body.size() + length > options_.max_body_bytes) return !(too_large = true);
      body.append(data, length);
      return true;
    };
    httplib::Result result = client_.send(req);
    if (cancelled()) return Cancelled();
    if (too_large) {
      return HttpError{HttpErrorKind::kTooLarge,
                       "response from " + Describe(url) + " is larger than " +
                           std::to_string(options_.max_body_bytes) + " bytes"};
    }
    const httplib::Error error = result.error();
    // After a stop() a body read up to the closed socket looks complete.
    if (late || watchdog.fired() || error == httplib::Error::ConnectionTimeout ||
        (error != httplib::Error::Success && Clock::now() >= deadline_)) {
      return Timeout(url);
    }
    if (error != httplib::Error::Success || !result) {
      return HttpError{HttpErrorKind::kConnection,
                       "request to " + Describe(url) + " failed: " + Explain(error)};
    }
    return Hop{result->status, std::move(body), result->get_header_value("Location")};
  }

  HttpResult FollowRedirects(const httplib::Headers& headers, const Watchdog& watchdog) {
    const bool credentials = options_.basic_auth || options_.bearer_token;
    HttpUrl url = origin_;
    std::set<std::string> visited = {url.path};
    for (int redirects = 0;; ++redirects) {
      auto hop = SendOnce(url, headers, watchdog);
      if (!hop.ok()) return hop.error();
      if (!method_.follow_redirects || !IsRedirect(hop.value().status)) {
        return HttpClientResponse{hop.value().status, std::move(hop).value().body, Describe(url)};
      }
      const std::string from = Describe(url);
      const std::string& location = hop.value().location;
      if (location.empty()) {
        return HttpError{HttpErrorKind::kHttpStatus, "HTTP " + std::to_string(hop.value().status) +
                                                         " from " + from + " without a Location"};
      }
      std::string why;
      auto next = ResolveLocation(url, location, why);
      if (!next) {
        return HttpError{
            HttpErrorKind::kHttpStatus,
            "redirect from " + from + " to \"" + Shown(location) + "\" not followed: " + why};
      }
      const std::string to = Describe(*next);
      if (!SameOrigin(*next, origin_)) {
        const std::string origin = origin_.SchemeHostPort();
        return HttpError{HttpErrorKind::kHttpStatus,
                         "redirect from " + from + " to " + to + " not followed: another origin (" +
                             (credentials ? "credentials stay with " + origin
                                          : "redirects are followed only within " + origin) +
                             ")"};
      }
      if (!visited.insert(next->path).second) {
        return HttpError{HttpErrorKind::kHttpStatus,
                         "redirect loop: " + from + " redirects back to " + to};
      }
      if (redirects == kMaxHttpRedirects) {
        return HttpError{HttpErrorKind::kHttpStatus,
                         "more than " + std::to_string(kMaxHttpRedirects) + " redirects from " +
                             Describe(origin_) + " (the last to " + to + ")"};
      }
      url = std::move(*next);
    }
  }

  const HttpUrl origin_;  // the URL asked for
  const Method& method_;
  const HttpRequestOptions& options_;
  const Clock::time_point deadline_;  // of every hop
  httplib::Client client_;
};

}  // namespace

void RequestCanceller::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (client_) StopHttplibClient(*client_);  // shuts the socket down under the request's feet
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

std::string_view HttpErrorKindName(HttpErrorKind kind) {
  switch (kind) {
    case HttpErrorKind::kConnection:
      return "connection";
    case HttpErrorKind::kTimeout:
      return "timeout";
    case HttpErrorKind::kTooLarge:
      return "too_large";
    case HttpErrorKind::kHttpStatus:
      return "http_status";
    case HttpErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string HttpError::ToString() const {
  return std::string(HttpErrorKindName(kind)) + ": " + message;
}

namespace {

HttpResult Send(const HttpUrl& url, const Method& method, const HttpClientHeaders& headers,
                const HttpRequestOptions& options) {
  try {
    Request request(url, method, options);
    return request.Run(headers);
  } catch (const std::exception& e) {  // httplib and std can throw (bad_alloc, system_error, ...)
    return HttpError{HttpErrorKind::kConnection,
                     "request to " + Describe(url) + " failed: unexpected error: " + e.what()};
  }
}

}  // namespace

HttpResult HttpGet(const HttpUrl& url, const HttpClientHeaders& headers,
                   const HttpRequestOptions& options) {
  return Send(url, Method{"GET", nullptr, "", true}, headers, options);
}

HttpResult HttpPost(const HttpUrl& url, const HttpClientHeaders& headers, const std::string& body,
                    const std::string& content_type, const HttpRequestOptions& options) {
  return Send(url, Method{"POST", &body, content_type, false}, headers, options);
}

}  // namespace virtscale
