#pragma once
// The agent's one HTTP client (sources, simulate, notifications), over
// cpp-httplib. HttpGet and HttpPost are blocking and bounded:
// - `timeout` is a total deadline: connecting, every redirect hop, the headers
//   and the body. cpp-httplib's own timeouts apply per read, so a server that
//   trickles its answer a byte at a time would hold a request for ever; a
//   watchdog stops the request at the deadline.
// - The body is counted as it arrives (after decompression); past
//   `max_body_bytes` the request ends with too_large.
// - Redirects (301, 302, 303, 307, 308) are followed only within the origin of
//   the URL (scheme, host, port), at most kMaxHttpRedirects, all within the one
//   deadline, so credentials never reach another origin. Any other redirect
//   ends the request with http_status and says why. HttpPost follows no
//   redirect: a 3xx is a response like any other (re-sending a body to another
//   place is the caller's decision, and a webhook that moved should be fixed).
// - Any other status, 4xx and 5xx included, is a response: the caller decides
//   (Prometheus explains a bad query in the body of a 400).
// Messages name URLs without their query string (it may carry secrets).
//
//   std::string why;
//   auto url = ParseHttpUrl("http://127.0.0.1:9090/api/v1/query?query=up", why);
//   HttpRequestOptions options;
//   options.timeout = std::chrono::seconds(5);
//   options.bearer_token = token;
//   HttpResult r = HttpGet(*url, {{"Accept", "application/json"}}, options);
//   if (!r.ok()) {
//     // r.error().ToString(): "timeout: no complete response within 5s from
//     // http://127.0.0.1:9090/api/v1/query"
//   } else if (r.value().status == 200) {
//     Decode(r.value().body);
//   }
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/http_url.h"
#include "common/result.h"

namespace httplib {
class Client;
}

namespace virtscale {

inline constexpr int kMaxHttpRedirects = 10;
// Default body cap.
inline constexpr size_t kMaxHttpBodyBytes = 16 << 20;

// Lets another thread abort a request in flight, so a shutdown does not wait
// for a slow server. A request still connecting ends when it connects or at
// its deadline.
class RequestCanceller {
 public:
  // Aborts the current request (if any) and makes every later Attach fail.
  void Cancel();
  bool cancelled() const;

  // Used by HttpGet and HttpPost around a request: Attach returns false once cancelled.
  bool Attach(httplib::Client* client);
  void Detach();

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  httplib::Client* client_ = nullptr;
};

struct HttpBasicAuth {
  std::string username;
  std::string password;
};

struct HttpRequestOptions {
  Duration timeout = std::chrono::seconds(5);  // total, see above
  size_t max_body_bytes = kMaxHttpBodyBytes;
  // Sent to the URL's origin only.
  std::optional<HttpBasicAuth> basic_auth;
  std::optional<std::string> bearer_token;
  // https only.
  std::string ca_file;  // empty: the system CAs
  bool verify_certificate = true;
  RequestCanceller* canceller = nullptr;  // may be null
};

using HttpClientHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpClientResponse {
  int status = 0;
  std::string body;
  std::string url;  // where the answer came from (after redirects), without the query
};

enum class HttpErrorKind {
  kConnection,  // refused, reset, DNS, TLS, closed mid-answer
  kTimeout,     // no complete answer within `timeout`
  kTooLarge,    // body above `max_body_bytes`
  kHttpStatus,  // a redirect not followed (another origin, a loop, too many, no Location)
  kCancelled,   // RequestCanceller::Cancel
};

// "connection", "timeout", "too_large", "http_status", "cancelled".
std::string_view HttpErrorKindName(HttpErrorKind kind);

struct HttpError {
  HttpErrorKind kind;
  std::string message;  // e.g. "request to http://h:1/x failed: connection refused or ..."
  std::string ToString() const;
};

using HttpResult = Result<HttpClientResponse, HttpError>;

// One GET of `url` (path and query included). Sends User-Agent: virtscale and
// `headers`; never throws.
[[nodiscard]] HttpResult HttpGet(const HttpUrl& url, const HttpClientHeaders& headers,
                                 const HttpRequestOptions& options);

// One POST of `body` to `url`, with Content-Type `content_type` (unless
// `headers` has one), the same deadline, cap, canceller and credential rules,
// and no redirects followed (see above); never throws.
[[nodiscard]] HttpResult HttpPost(const HttpUrl& url, const HttpClientHeaders& headers,
                                  const std::string& body, const std::string& content_type,
                                  const HttpRequestOptions& options);

}  // namespace virtscale
