#include "common/http_url.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

namespace virtscale {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 3986 section 2: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":".
bool StartsWithScheme(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || !IsAlpha(text[0])) return false;
  return std::all_of(text.begin(), text.begin() + colon, [](char c) {
    return IsAlpha(c) || IsDigit(c) || c == '+' || c == '-' || c == '.';
  });
}

// RFC 3986 section 5.2.4, for a path that starts with '/'.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> kept;
  size_t begin = 1;
  while (true) {
    const size_t end = std::min(path.find('/', begin), path.size());
    const std::string_view segment = path.substr(begin, end - begin);
    const bool last = end == path.size();
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
    } else if (segment != ".") {
      kept.push_back(segment);
    }
    if (last) {
      if (segment == "." || segment == "..") kept.push_back("");  // keeps the trailing '/'
      break;
    }
    begin = end + 1;
  }
  std::string out;
  for (const auto& segment : kept) out += "/" + std::string(segment);
  return out.empty() ? "/" : out;
}

}  // namespace

std::string HttpUrl::SchemeHostPort() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<HttpUrl> ParseHttpUrl(std::string_view text, std::string& error) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      error = "contains whitespace or control characters";
      return std::nullopt;
    }
  }
  HttpUrl url;
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    error = "want http://HOST[:PORT][/PATH] or https://...";
    return std::nullopt;
  }
  std::string scheme(text.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") {
    error = "scheme must be http or https";
    return std::nullopt;
  }
  url.scheme = scheme;
  std::string_view rest = text.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) {
    error = "fragments are not supported";
    return std::nullopt;
  }
  const size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    error = "credentials in the URL are not supported; use basic_auth";
    return std::nullopt;
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      error = "unexpected text after IPv6 address";
      return std::nullopt;
    }
    if (!after.empty()) port_text = after.substr(1);
    if (url.host.empty() ||
        url.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      error = "invalid IPv6 address";
      return std::nullopt;
    }
  } else {
    const size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (url.host.empty()) {
      error = "missing host";
      return std::nullopt;
    }
    for (char c : url.host) {
      if (!IsAlpha(c) && !IsDigit(c) && c != '.' && c != '-' && c != '_') {
        error = "invalid host \"" + url.host + "\"";
        return std::nullopt;
      }
    }
  }
  if (authority.find(':') != std::string_view::npos && authority.back() != ']') {
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535) {
      error = "invalid port \"" + std::string(port_text) + "\"";
      return std::nullopt;
    }
    url.port = port;
  } else {
    url.port = url.scheme == "https" ? 443 : 80;
  }
  url.path =
      path.empty() ? "/" : (path.front() == '?' ? "/" + std::string(path) : std::string(path));
  return url;
}

std::optional<HttpUrl> ResolveLocation(const HttpUrl& base, std::string_view location,
                                       std::string& error) {
  location = location.substr(0, location.find('#'));
  if (location.empty()) {
    error = "empty Location";
    return std::nullopt;
  }
  std::string absolute;
  if (StartsWithScheme(location)) {
    absolute = location;
  } else if (location.starts_with("//")) {
    absolute = base.scheme + ":" + std::string(location);
  } else {
    const std::string path = base.path.substr(0, base.path.find('?'));
    if (location.front() == '/') {
      absolute = base.SchemeHostPort() + std::string(location);
    } else if (location.front() == '?') {
      absolute = base.SchemeHostPort() + path + std::string(location);
    } else {
      absolute =
          base.SchemeHostPort() + path.substr(0, path.rfind('/') + 1) + std::string(location);
    }
  }
  auto url = ParseHttpUrl(absolute, error);
  if (!url) return std::nullopt;
  const size_t query = url->path.find('?');
  url->path = RemoveDotSegments(std::string_view(url->path).substr(0, query)) +
              (query == std::string::npos ? "" : url->path.substr(query));
  return url;
}

bool SameOrigin(const HttpUrl& a, const HttpUrl& b) {
  return a.scheme == b.scheme && a.port == b.port &&
         std::equal(
             a.host.begin(), a.host.end(), b.host.begin(), b.host.end(),
             [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
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

}  // namespace virtscale
