#pragma once
// http(s) URLs as the HTTP client (common/http_client.h) needs them: parsed,
// resolved against a redirect's Location, compared by origin.
//
//   std::string why;
//   auto url = ParseHttpUrl("http://[::1]:9090/prom?x=1", why);
//   // url->SchemeHostPort() == "http://[::1]:9090", url->path == "/prom?x=1"
//   auto next = ResolveLocation(*url, "../a", why);   // http://[::1]:9090/a
//   SameOrigin(*url, *next);                           // true
#include <optional>
#include <string>
#include <string_view>

namespace virtscale {

// A URL split into what the HTTP client needs.
struct HttpUrl {
  std::string scheme;                  // "http" or "https"
  std::string host;                    // without IPv6 brackets
  int port = 0;                        // explicit, or 80/443
  std::string path;                    // starts with '/', may carry "?query"; "/" when absent
  std::string SchemeHostPort() const;  // "http://[::1]:9090"
  bool operator==(const HttpUrl&) const = default;
};

// Returns std::nullopt and sets `error` (a short reason) when `text` is not an
// absolute http(s) URL without credentials or fragment.
[[nodiscard]] std::optional<HttpUrl> ParseHttpUrl(std::string_view text, std::string& error);

// Where a redirect's Location header points, resolved against `base` (RFC 3986
// section 5.2): an absolute URL, "//host/...", "/path", "?query" or a relative
// path; dot segments removed, a fragment dropped. The result must be a URL
// ParseHttpUrl accepts, or std::nullopt with `error` set.
//
//   base http://h:80/a/b, "../c?x" -> http://h:80/c?x;  "ftp://h/" -> error
[[nodiscard]] std::optional<HttpUrl> ResolveLocation(const HttpUrl& base, std::string_view location,
                                                     std::string& error);

// Same scheme, host (case-insensitive) and port; ports are explicit after
// parsing, so http://h and http://h:80 are one origin.
bool SameOrigin(const HttpUrl& a, const HttpUrl& b);

// `s` for a query component: everything but RFC 3986 unreserved characters as
// %XX, so "sum(x{a=\"b\"})" survives any server's decoding.
[[nodiscard]] std::string PercentEncode(std::string_view s);

}  // namespace virtscale
