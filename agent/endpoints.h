#pragma once
// The agent's HTTP endpoints as plain handlers: a request in, a response out,
// independent of the transport (agent/http_server.h on Boost.Beast). The
// server parses bytes into an HttpRequest, authenticates, calls
// Router::Serve and writes the HttpResponse; nothing here sees a socket.
//
//   EndpointCallbacks cb;
//   cb.metrics = [&](bool gzip) { return exposition.Render(..., gzip); };
//   cb.ready = [&] { return sampler.Latest() != nullptr; };
//   ...
//   const Router router = MakeAgentRouter(std::move(cb));
//   HttpResponse res = router.Serve(request);
//
// Routing rules (Router::Serve):
//   - a known path with a registered method calls its handler;
//   - HEAD is served by the GET handler, with the body left out (the response
//     still says how long it would be: `omit_body`);
//   - a known path with another method is 405 with `Allow` (e.g. "GET, HEAD");
//   - any other path is 404;
//   - a handler that throws is a 500 with the reason logged.
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/landing_page.h"
#include "agent/metrics_body_cache.h"
#include "autoscale/decision.h"
#include "autoscale/engine.h"

namespace virtscale {

// ASCII case-insensitive ordering for header names.
struct HeaderNameLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};
using HttpHeaders = std::multimap<std::string, std::string, HeaderNameLess>;
using QueryParams = std::multimap<std::string, std::string>;

struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ... as sent
  std::string path;    // percent-decoded, without the query
  QueryParams params;  // decoded query parameters, in order
  HttpHeaders headers;
  std::string body;
  // Values of a route's `{name}` segments (Router::Add), set by Router::Serve.
  std::map<std::string, std::string, std::less<>> path_params;

  // The first value of header `name` (any case), or "" when absent.
  std::string Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;
  // When set, the body is this pre-rendered /metrics body instead of `body`,
  // sent from its parts without copying them.
  std::shared_ptr<const MetricsBody> shared_body;
  // HEAD: the transport sends the headers (Content-Length = BodySize()) only.
  bool omit_body = false;

  size_t BodySize() const { return shared_body ? shared_body->size() : body.size(); }
  // Sets the body and its Content-Type.
  void SetContent(std::string text, std::string_view content_type);
  void SetHeader(std::string_view name, std::string value);
};

// Splits "/path?a=1&b=x%20y" into a decoded path and parameters. `+` is a space
// in the query only. A malformed escape ("%zz") is kept literally.
void ParseRequestTarget(std::string_view target, std::string& path, QueryParams& params);
std::string PercentDecode(std::string_view text, bool plus_is_space);

// Whether an Accept-Encoding value accepts gzip (RFC 9110 12.5.3): the q-value
// of "gzip" (or "x-gzip"), else of "*", must be above 0. "gzip;q=0" refuses it;
// an absent or empty header accepts only identity.
bool AcceptsGzip(std::string_view accept_encoding);

class Router {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // One handler per (method, path); a second Add for the same pair replaces it.
  // A path segment "{name}" matches any one non-empty segment, whose value the
  // handler finds in HttpRequest::path_params; exact paths win over patterns.
  void Add(std::string method, std::string path, Handler handler);
  HttpResponse Serve(const HttpRequest& request) const;

  // The route `path` is served by, as registered ("/api/v1/groups/{group}/pause"),
  // or "" when none; the request metrics label by it, so their cardinality stays bounded.
  std::string RouteOf(std::string_view path) const;
  std::vector<std::string> Paths() const;
  // "GET, HEAD" or "POST": what a 405 for `path` lists.
  std::string Allow(std::string_view path) const;

 private:
  using Methods = std::map<std::string, Handler>;
  struct Match {
    const std::string* route = nullptr;
    const Methods* methods = nullptr;
    std::map<std::string, std::string, std::less<>> params;
  };
  std::optional<Match> Find(std::string_view path) const;

  std::map<std::string, Methods, std::less<>> routes_;  // path -> method
  std::vector<std::string> patterns_;                   // routes_ keys with "{", in order added
};

// What the agent provides to its endpoints. Every callback may run on any
// server thread, concurrently with itself.
struct EndpointCallbacks {
  // The /metrics body, gzip-compressed when `gzip`.
  std::function<MetricsBody(bool gzip)> metrics;
  // /-/ready: whether the first sample has been taken.
  std::function<bool()> ready;
  // /api/v1/groups data: Engine::GroupsJson().
  std::function<nlohmann::json()> groups;
  // /api/v1/decisions data for a parsed filter: Engine::DecisionsJson().
  std::function<nlohmann::json(const autoscale::DecisionFilter&)> decisions;
  // /api/v1/hosts data: the fleet's hosts (hosts:), an empty list without them.
  std::function<nlohmann::json()> hosts;
  // /api/v1/leader data: this controller's role in the election
  // (leader_election:), {"enabled": false} without one.
  std::function<nlohmann::json()> leader;
  // What "/" shows.
  std::function<LandingPageData()> landing_page;
  // POST /-/reload; null when the lifecycle API is off (then 403). Returns
  // whether the config was reloaded, else sets `error`.
  std::function<bool(std::string& error)> reload;
  // POST /api/v1/groups/{group}/pause|resume and
  // /api/v1/groups/{group}/members/{domain}/protect|unprotect; null when the
  // lifecycle API is off (then 403).
  std::function<autoscale::LifecycleChange(const std::string& group, bool paused)> set_paused;
  std::function<autoscale::LifecycleChange(const std::string& group, const std::string& domain,
                                           bool is_protected)>
      set_protected;
};

// The routes: /metrics, /-/healthy, /-/ready, /api/v1/groups, /api/v1/hosts, /api/v1/leader,
// /api/v1/decisions, /, /-/reload and the lifecycle routes above.
Router MakeAgentRouter(EndpointCallbacks callbacks);

// JSON for responses: invalid UTF-8 is replaced, never a 500.
std::string DumpJson(const nlohmann::json& body);

}  // namespace virtscale
