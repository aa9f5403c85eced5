#include "agent/endpoints.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <utility>

#include "agent/decisions_query.h"
#include "common/log.h"

namespace virtscale {
namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A qvalue (RFC 9110 12.4.2): "0", "0.5", "1", "1.000". Unparsable counts as 1,
// as browsers do, so a sloppy client still gets what it asked for.
double ParseQValue(std::string_view text) {
  text = Trim(text);
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return 1;
  double value = text[0] - '0';
  if (text.size() > 1) {
    if (text[1] != '.') return 1;
    double scale = 0.1;
    for (char c : text.substr(2)) {
      if (c < '0' || c > '9') return 1;
      value += (c - '0') * scale;
      scale /= 10;
    }
  }
  return std::min(value, 1.0);
}

HttpResponse Text(int status, std::string text) {
  HttpResponse res;
  res.status = status;
  res.SetContent(std::move(text), "text/plain; charset=utf-8");
  return res;
}

HttpResponse Json(int status, const nlohmann::json& body) {
  HttpResponse res;
  res.status = status;
  res.SetContent(DumpJson(body), "application/json");
  return res;
}

}  // namespace

bool HeaderNameLess::operator()(std::string_view a, std::string_view b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return Lower(x) < Lower(y); });
}

std::string HttpRequest::Header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void HttpResponse::SetContent(std::string text, std::string_view content_type) {
  body = std::move(text);
  shared_body.reset();
  SetHeader("Content-Type", std::string(content_type));
}

void HttpResponse::SetHeader(std::string_view name, std::string value) {
  headers.erase(std::string(name));
  headers.emplace(std::string(name), std::move(value));
}

std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int hi = HexValue(text[i + 1]), lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

void ParseRequestTarget(std::string_view target, std::string& path, QueryParams& params) {
  const size_t hash = target.find('#');
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  const size_t question = target.find('?');
  path = PercentDecode(target.substr(0, question), false);
  params.clear();
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    params.emplace(PercentDecode(pair.substr(0, eq), true),
                   eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true));
  }
}

bool AcceptsGzip(std::string_view accept_encoding) {
  std::optional<double> gzip, any;
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    const size_t semi = item.find(';');
    const std::string_view coding = Trim(item.substr(0, semi));
    double q = 1;
    std::string_view rest =
        semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
    while (!rest.empty()) {
      const size_t next = rest.find(';');
      const std::string_view param = Trim(rest.substr(0, next));
      rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
      if (param.size() >= 2 && Lower(param[0]) == 'q' && Trim(param.substr(1)).starts_with("="))
        q = ParseQValue(Trim(param.substr(1)).substr(1));
    }
    if (EqualsIgnoreCase(coding, "gzip") || EqualsIgnoreCase(coding, "x-gzip")) {
      gzip = std::max(gzip.value_or(0), q);
    } else if (coding == "*") {
      any = q;
    }
  }
  if (gzip) return *gzip > 0;
  return any && *any > 0;
}

void Router::Add(std::string method, std::string path, Handler handler) {
  if (path.find('{') != std::string::npos && !routes_.contains(path)) patterns_.push_back(path);
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::optional<Router::Match> Router::Find(std::string_view path) const {
  if (auto it = routes_.find(path); it != routes_.end()) return Match{&it->first, &it->second, {}};
  const std::vector<std::string_view> have = Segments(path);
  for (const std::string& pattern : patterns_) {
    const std::vector<std::string_view> want = Segments(pattern);
    if (want.size() != have.size()) continue;
    Match match;
    bool ok = true;
    for (size_t i = 0; ok && i < want.size(); ++i) {
      if (want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}') {
        ok = !have[i].empty();
        match.params.emplace(want[i].substr(1, want[i].size() - 2), have[i]);
      } else {
        ok = want[i] == have[i];
      }
    }
    if (!ok) continue;
    auto it = routes_.find(pattern);
    match.route = &it->first;
    match.methods = &it->second;
    return match;
  }
  return std::nullopt;
}

std::string Router::RouteOf(std::string_view path) const {
  std::optional<Match> match = Find(path);
  return match ? *match->route : "";
}

std::vector<std::string> Router::Paths() const {
  std::vector<std::string> out;
  for (const auto& [path, methods] : routes_) out.push_back(path);
  return out;
}

std::string Router::Allow(std::string_view path) const {
  std::optional<Match> match = Find(path);
  if (!match) return "";
  std::vector<std::string> methods;
  for (const auto& [method, handler] : *match->methods) {
    methods.push_back(method);
    if (method == "GET" && !match->methods->contains("HEAD")) methods.push_back("HEAD");
  }
  std::sort(methods.begin(), methods.end());
  std::string out;
  for (const auto& m : methods) out += (out.empty() ? "" : ", ") + m;
  return out;
}

HttpResponse Router::Serve(const HttpRequest& request) const {
  std::optional<Match> route = Find(request.path);
  if (!route) return Text(404, "404 page not found\n");
  const bool head = request.method == "HEAD";
  auto handler = route->methods->find(request.method);
  if (handler == route->methods->end() && head) handler = route->methods->find("GET");
  if (handler == route->methods->end()) {
    HttpResponse res = Text(405, "405 method not allowed\n");
    res.SetHeader("Allow", Allow(request.path));
    return res;
  }
  HttpResponse res;
  try {
    if (route->params.empty()) {
      res = handler->second(request);
    } else {
      HttpRequest with_params = request;
      with_params.path_params = std::move(route->params);
      res = handler->second(with_params);
    }
  } catch (const std::exception& e) {
    LogError("HTTP handler failed", {{"path", request.path}, {"err", e.what()}});
    res = Text(500, "internal error\n");
  } catch (...) {
    LogError("HTTP handler failed", {{"path", request.path}, {"err", "unknown error"}});
    res = Text(500, "internal error\n");
  }
  res.omit_body = head;
  return res;
}

std::string DumpJson(const nlohmann::json& body) {
  // Strings are repaired where they enter (common/utf8.h); replacing here too
  // means one missed entry point can never turn an endpoint into a 500.
  return body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

HttpResponse LifecycleResponse(const autoscale::LifecycleChange& change) {
  using Status = autoscale::LifecycleChange::Status;
  switch (change.status) {
    case Status::kOk:
      return Json(200, {{"status", "success"}, {"data", change.body}});
    case Status::kNoGroup:
      return Json(404, {{"status", "error"},
                        {"errorType", "not_found"},
                        {"error", "no group " + change.body.value("group", std::string())}});
    case Status::kNoMember:
      return Json(404, {{"status", "error"},
                        {"errorType", "not_found"},
                        {"error", change.body.value("domain", std::string()) +
                                      " is not a member of group " +
                                      change.body.value("group", std::string())}});
    case Status::kNotStored:
      return Json(500, {{"status", "error"},
                        {"errorType", "internal"},
                        {"error", change.body.value("note", std::string())},
                        {"data", change.body}});
  }
  return Json(500, {{"status", "error"}, {"errorType", "internal"}, {"error", "unknown status"}});
}

HttpResponse LifecycleDisabled() {
  return Text(403, "Lifecycle API is not enabled (--web.enable-lifecycle).\n");
}

void AddLifecycleRoutes(Router& router, std::shared_ptr<const EndpointCallbacks> callbacks) {
  for (const bool paused : {true, false}) {
    router.Add(
        "POST", paused ? "/api/v1/groups/{group}/pause" : "/api/v1/groups/{group}/resume",
        [callbacks, paused](const HttpRequest& req) {
          if (!callbacks->set_paused) return LifecycleDisabled();
          return LifecycleResponse(callbacks->set_paused(req.path_params.at("group"), paused));
        });
  }
  for (const bool is_protected : {true, false}) {
    router.Add("POST",
               is_protected ? "/api/v1/groups/{group}/members/{domain}/protect"
                            : "/api/v1/groups/{group}/members/{domain}/unprotect",
               [callbacks, is_protected](const HttpRequest& req) {
                 if (!callbacks->set_protected) return LifecycleDisabled();
                 return LifecycleResponse(callbacks->set_protected(
                     req.path_params.at("group"), req.path_params.at("domain"), is_protected));
               });
  }
}

}  // namespace

Router MakeAgentRouter(EndpointCallbacks cb) {
  auto callbacks = std::make_shared<const EndpointCallbacks>(std::move(cb));
  Router router;
  router.Add("GET", "/metrics", [callbacks](const HttpRequest& req) {
    HttpResponse res;
    auto body = std::make_shared<const MetricsBody>(
        callbacks->metrics(AcceptsGzip(req.Header("Accept-Encoding"))));
    if (body->gzip) res.SetHeader("Content-Encoding", "gzip");
    res.SetHeader("Vary", "Accept-Encoding");  // caches must not mix the two
    res.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    res.shared_body = std::move(body);
    return res;
  });
  router.Add("GET", "/-/healthy",
             [](const HttpRequest&) { return Text(200, "virtscale is Healthy.\n"); });
  router.Add("GET", "/-/ready", [callbacks](const HttpRequest&) {
    return callbacks->ready() ? Text(200, "virtscale is Ready.\n")
                              : Text(503, "virtscale is not ready: no sample yet.\n");
  });
  router.Add("GET", "/api/v1/groups", [callbacks](const HttpRequest&) {
    return Json(200, {{"status", "success"}, {"data", callbacks->groups()}});
  });
  router.Add("GET", "/api/v1/hosts", [callbacks](const HttpRequest&) {
    return Json(200, {{"status", "success"},
                      {"data", callbacks->hosts ? callbacks->hosts() : nlohmann::json::array()}});
  });
  router.Add("GET", "/api/v1/leader", [callbacks](const HttpRequest&) {
    return Json(200, {{"status", "success"},
                      {"data", callbacks->leader ? callbacks->leader()
                                                 : nlohmann::json{{"enabled", false}}}});
  });
  router.Add("GET", "/api/v1/decisions", [callbacks](const HttpRequest& req) {
    autoscale::DecisionFilter filter;
    std::string error;
    if (!ParseDecisionQuery(req.params, filter, error))
      return Json(400, {{"status", "error"}, {"errorType", "bad_data"}, {"error", error}});
    return Json(200, {{"status", "success"}, {"data", callbacks->decisions(filter)}});
  });
  router.Add("GET", "/", [callbacks](const HttpRequest&) {
    HttpResponse res;
    res.SetContent(RenderLandingPage(callbacks->landing_page()), "text/html; charset=utf-8");
    return res;
  });
  router.Add("POST", "/-/reload", [callbacks](const HttpRequest&) {
    if (!callbacks->reload) return LifecycleDisabled();
    std::string error;
    if (callbacks->reload(error)) return Text(200, "config reloaded\n");
    return Text(500, "reload failed:\n" + error);
  });
  AddLifecycleRoutes(router, callbacks);
  return router;
}

}  // namespace virtscale
