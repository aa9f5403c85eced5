#pragma once
// `{domain}`, `{group}` and `{address}` in the argv of health checks and hooks
// and in health-check URLs (DESIGN.md "Lifecycle keys"). A placeholder is `{`,
// a lower-case name of letters and `_`, and `}`; any other brace is literal
// text, so `awk '{print $1}'` needs no escaping. An unknown name (`{domian}`)
// is a config error, found at load by CheckPlaceholders.
//
// In argv elements values are inserted as they are (there is no shell). In
// URLs every value is percent-encoded (PercentEncode: all but RFC 3986
// unreserved characters): an IPv4 literal, group names and the usual domain
// names ([A-Za-z0-9_.-]) come out unchanged, and no value can add a path,
// query or another host.
//
//   PlaceholderValues v{.domain = "web-1", .group = "web", .address = "10.0.0.5"};
//   SubstitutePlaceholders("http://{address}:8080/h?d={domain}", v, PercentEncode)
//     -> "http://10.0.0.5:8080/h?d=web-1"
//   PlaceholderEnvironment(v)
//     -> {{"VIRTSCALE_DOMAIN", "web-1"}, {"VIRTSCALE_GROUP", "web"}, {"VIRTSCALE_ADDRESS",
//     "10.0.0.5"}}
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virtscale {

struct PlaceholderValues {
  std::string domain;
  std::string group;
  std::string address;  // the member's first IPv4 address; empty when not known
};

// False (with `error` naming the first unknown placeholder, e.g.
// "unknown placeholder {domian} (known: {domain}, {group}, {address})").
[[nodiscard]] bool CheckPlaceholders(std::string_view text, std::string& error);

// Whether `text` holds the placeholder `name` ("address"): such a check
// cannot run while the address is unknown.
[[nodiscard]] bool UsesPlaceholder(std::string_view text, std::string_view name);

// `text` with each known placeholder replaced by its value, passed through
// `escape` when given. Unknown placeholders are left as they are (load rejects them).
[[nodiscard]] std::string SubstitutePlaceholders(std::string_view text,
                                                 const PlaceholderValues& values,
                                                 std::string (*escape)(std::string_view) = nullptr);

// SubstitutePlaceholders (no escaping) of each argv element.
[[nodiscard]] std::vector<std::string> SubstituteArgv(const std::vector<std::string>& argv,
                                                      const PlaceholderValues& values);

// VIRTSCALE_DOMAIN, VIRTSCALE_GROUP, VIRTSCALE_ADDRESS (empty when unknown),
// for SubprocessOptions::env.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> PlaceholderEnvironment(
    const PlaceholderValues& values);

}  // namespace virtscale
