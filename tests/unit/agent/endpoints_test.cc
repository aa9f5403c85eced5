#include "agent/endpoints.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>

namespace virtscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

HttpRequest Request(std::string method, std::string_view target) {
  HttpRequest req;
  req.method = std::move(method);
  ParseRequestTarget(target, req.path, req.params);
  return req;
}

// Callbacks that record what they were asked.
struct FakeAgent {
  bool ready = false;
  bool lifecycle = true;
  bool reload_ok = true;
  int reloads = 0;
  std::optional<bool> gzip_asked;
  autoscale::DecisionFilter last_filter;
  std::vector<std::string> lifecycle_calls;

  EndpointCallbacks Callbacks() {
    EndpointCallbacks cb;
    cb.metrics = [this](bool gzip) {
      gzip_asked = gzip;
      MetricsBody body;
      body.head = "a 1\n";
      body.tail = std::make_shared<const std::string>("b 2\n");
      body.gzip = gzip;
      return body;
    };
    cb.ready = [this] { return ready; };
    cb.groups = [] { return nlohmann::json::array({{{"name", "web"}}}); };
    cb.decisions = [this](const autoscale::DecisionFilter& f) {
      last_filter = f;
      return nlohmann::json::array();
    };
    cb.landing_page = [] {
      LandingPageData page;
      page.version = "9.9.9";
      return page;
    };
    if (lifecycle) {
      cb.reload = [this](std::string& error) {
        ++reloads;
        if (!reload_ok) error = "bad config";
        return reload_ok;
      };
      cb.set_paused = [this](const std::string& group, bool paused) {
        lifecycle_calls.push_back(group + (paused ? " pause" : " resume"));
        autoscale::LifecycleChange c;
        if (group != "web") c.status = autoscale::LifecycleChange::Status::kNoGroup;
        c.body = {{"group", group}, {"paused", paused}};
        return c;
      };
      cb.set_protected = [this](const std::string& group, const std::string& domain,
                                bool is_protected) {
        lifecycle_calls.push_back(group + " " + domain +
                                  (is_protected ? " protect" : " unprotect"));
        autoscale::LifecycleChange c;
        if (domain == "gone") c.status = autoscale::LifecycleChange::Status::kNoMember;
        if (domain == "readonly") c.status = autoscale::LifecycleChange::Status::kNotStored;
        c.body = {{"group", group}, {"domain", domain}, {"note", "storing it failed"}};
        return c;
      };
    }
    return cb;
  }
};

TEST(HttpHeaders, NamesAreCaseInsensitive) {
  HttpRequest req;
  req.headers.emplace("accept-ENCODING", "gzip");
  EXPECT_EQ(req.Header("Accept-Encoding"), "gzip");
  EXPECT_EQ(req.Header("accept-encoding"), "gzip");
  EXPECT_EQ(req.Header("Authorization"), "");
  HttpResponse res;
  res.SetHeader("content-type", "a");
  res.SetHeader("Content-Type", "b");
  EXPECT_EQ(res.headers.size(), 1u);
  EXPECT_EQ(res.headers.begin()->second, "b");
}

TEST(ParseRequestTarget, DecodesPathAndQuery) {
  std::string path;
  QueryParams params;
  ParseRequestTarget("/api/v1/decisions?group=web&group=a%20b&since=x+y&flag&=v&&#frag", path,
                     params);
  EXPECT_EQ(path, "/api/v1/decisions");
  EXPECT_THAT(params, ElementsAre(Pair("", "v"), Pair("flag", ""), Pair("group", "web"),
                                  Pair("group", "a b"), Pair("since", "x y")));
  ParseRequestTarget("/a%2Fb+c", path, params);
  EXPECT_EQ(path, "/a/b+c");  // '+' is a space only in the query
  EXPECT_TRUE(params.empty());
}

TEST(PercentDecode, KeepsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("%zz%4", false), "%zz%4");
  EXPECT_EQ(PercentDecode("%41%6a%", false), "Aj%");
  EXPECT_EQ(PercentDecode("a+b", true), "a b");
}

TEST(AcceptsGzip, HonoursQValues) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("gzip ; q=0.001"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, gzip;q=0.8, *;q=0.1"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.0"));
  EXPECT_FALSE(AcceptsGzip("gzip; Q=0.000"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0, *"));  // an explicit gzip wins over *
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzipped"));
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Router router;
  router.Add("GET", "/a", [](const HttpRequest&) { return HttpResponse{}; });
  router.Add("POST", "/b", [](const HttpRequest&) { return HttpResponse{}; });
  EXPECT_EQ(router.Serve(Request("GET", "/nope")).status, 404);
  EXPECT_EQ(router.Serve(Request("POST", "/nope")).status, 404);
  HttpResponse res = router.Serve(Request("POST", "/a"));
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers.find("allow")->second, "GET, HEAD");
  res = router.Serve(Request("GET", "/b"));
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers.find("Allow")->second, "POST");
  EXPECT_EQ(router.Serve(Request("HEAD", "/b")).status, 405);
  EXPECT_EQ(router.Serve(Request("DELETE", "/a")).status, 405);
  EXPECT_EQ(router.RouteOf("/a"), "/a");
  EXPECT_EQ(router.RouteOf("/c"), "");
}

TEST(Router, HeadIsGetWithoutBody) {
  Router router;
  router.Add("GET", "/a", [](const HttpRequest& req) {
    HttpResponse res;
    res.SetContent("hello " + req.method, "text/plain");
    return res;
  });
  HttpResponse get = router.Serve(Request("GET", "/a"));
  EXPECT_FALSE(get.omit_body);
  HttpResponse head = router.Serve(Request("HEAD", "/a"));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.omit_body);
  EXPECT_EQ(head.BodySize(), std::string("hello HEAD").size());
}

TEST(Router, AThrowingHandlerIs500) {
  Router router;
  router.Add("GET", "/a",
             [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  HttpResponse res = router.Serve(Request("GET", "/a"));
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, "internal error\n");
}

TEST(AgentRouter, MetricsServesTheSharedBodyAndNegotiatesGzip) {
  FakeAgent agent;
  const Router router = MakeAgentRouter(agent.Callbacks());
  HttpRequest req = Request("GET", "/metrics");
  HttpResponse res = router.Serve(req);
  EXPECT_EQ(res.status, 200);
  ASSERT_TRUE(res.shared_body);
  EXPECT_EQ(res.BodySize(), 8u);
  EXPECT_EQ(agent.gzip_asked, false);
  EXPECT_FALSE(res.headers.contains("Content-Encoding"));
  EXPECT_EQ(res.headers.find("Content-Type")->second, "text/plain; version=0.0.4; charset=utf-8");

  req.headers.emplace("Accept-Encoding", "gzip");
  res = router.Serve(req);
  EXPECT_EQ(agent.gzip_asked, true);
  EXPECT_EQ(res.headers.find("content-encoding")->second, "gzip");
  EXPECT_EQ(res.headers.find("Vary")->second, "Accept-Encoding");

  req.headers.clear();
  req.headers.emplace("accept-encoding", "gzip;q=0");
  res = router.Serve(req);
  EXPECT_EQ(agent.gzip_asked, false);
  EXPECT_FALSE(res.headers.contains("Content-Encoding"));

  req.method = "HEAD";
  res = router.Serve(req);
  EXPECT_TRUE(res.omit_body);
  EXPECT_EQ(res.BodySize(), 8u);
  EXPECT_EQ(router.Serve(Request("POST", "/metrics")).status, 405);
}

TEST(AgentRouter, HealthAndReadiness) {
  FakeAgent agent;
  const Router router = MakeAgentRouter(agent.Callbacks());
  EXPECT_EQ(router.Serve(Request("GET", "/-/healthy")).body, "virtscale is Healthy.\n");
  HttpResponse res = router.Serve(Request("GET", "/-/ready"));
  EXPECT_EQ(res.status, 503);
  agent.ready = true;
  res = router.Serve(Request("GET", "/-/ready"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "virtscale is Ready.\n");
}

TEST(AgentRouter, GroupsAndDecisionsAreJson) {
  FakeAgent agent;
  const Router router = MakeAgentRouter(agent.Callbacks());
  HttpResponse res = router.Serve(Request("GET", "/api/v1/groups"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.headers.find("Content-Type")->second, "application/json");
  auto body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["status"], "success");
  EXPECT_EQ(body["data"][0]["name"], "web");

  res = router.Serve(Request("GET", "/api/v1/decisions?group=web&limit=5"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(agent.last_filter.limit, 5u);
  EXPECT_EQ(agent.last_filter.groups, std::set<std::string>{"web"});

  res = router.Serve(Request("GET", "/api/v1/decisions?limit=zero"));
  EXPECT_EQ(res.status, 400);
  body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["status"], "error");
  EXPECT_EQ(body["errorType"], "bad_data");
  EXPECT_THAT(body["error"].get<std::string>(), HasSubstr("limit"));
}

TEST(AgentRouter, LandingPageIsHtml) {
  FakeAgent agent;
  const Router router = MakeAgentRouter(agent.Callbacks());
  HttpResponse res = router.Serve(Request("GET", "/"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.headers.find("Content-Type")->second, "text/html; charset=utf-8");
  EXPECT_THAT(res.body, HasSubstr("9.9.9"));
}

TEST(AgentRouter, ReloadIsPostOnlyAndNeedsTheLifecycleApi) {
  FakeAgent agent;
  Router router = MakeAgentRouter(agent.Callbacks());
  EXPECT_EQ(router.Serve(Request("GET", "/-/reload")).status, 405);
  HttpResponse res = router.Serve(Request("POST", "/-/reload"));  // no body at all
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "config reloaded\n");
  agent.reload_ok = false;
  res = router.Serve(Request("POST", "/-/reload"));
  EXPECT_EQ(res.status, 500);
  EXPECT_THAT(res.body, HasSubstr("bad config"));
  EXPECT_EQ(agent.reloads, 2);

  FakeAgent off;
  off.lifecycle = false;
  router = MakeAgentRouter(off.Callbacks());
  res = router.Serve(Request("POST", "/-/reload"));
  EXPECT_EQ(res.status, 403);
  EXPECT_THAT(res.body, HasSubstr("--web.enable-lifecycle"));
}

TEST(Router, PatternSegmentsMatchOneSegmentAndExactPathsWin) {
  Router router;
  router.Add("GET", "/g/{group}/x", [](const HttpRequest& req) {
    HttpResponse res;
    res.body = "pattern " + req.path_params.at("group");
    return res;
  });
  router.Add("GET", "/g/all/x", [](const HttpRequest&) {
    HttpResponse res;
    res.body = "exact";
    return res;
  });
  EXPECT_EQ(router.Serve(Request("GET", "/g/web/x")).body, "pattern web");
  EXPECT_EQ(router.Serve(Request("GET", "/g/we%20b/x")).body, "pattern we b");
  EXPECT_EQ(router.Serve(Request("GET", "/g/all/x")).body, "exact");
  EXPECT_EQ(router.Serve(Request("GET", "/g//x")).status, 404);
  EXPECT_EQ(router.Serve(Request("GET", "/g/a/b/x")).status, 404);
  EXPECT_EQ(router.Serve(Request("GET", "/g/web/x/")).status, 404);
  EXPECT_EQ(router.Serve(Request("POST", "/g/web/x")).status, 405);
  EXPECT_EQ(router.RouteOf("/g/web/x"), "/g/{group}/x");
  EXPECT_EQ(router.RouteOf("/g/web/y"), "");
}

TEST(AgentRouter, LifecycleEndpointsArePostOnlyAndMapStatuses) {
  FakeAgent agent;
  Router router = MakeAgentRouter(agent.Callbacks());
  EXPECT_EQ(router.Serve(Request("GET", "/api/v1/groups/web/pause")).status, 405);
  HttpResponse res = router.Serve(Request("POST", "/api/v1/groups/web/pause"));
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(nlohmann::json::parse(res.body)["data"]["paused"], true);
  EXPECT_EQ(router.Serve(Request("POST", "/api/v1/groups/web/resume")).status, 200);
  res = router.Serve(Request("POST", "/api/v1/groups/db/pause"));
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(nlohmann::json::parse(res.body)["error"], "no group db");
  EXPECT_EQ(router.Serve(Request("POST", "/api/v1/groups/web/members/web-1/protect")).status, 200);
  EXPECT_EQ(router.Serve(Request("POST", "/api/v1/groups/web/members/web-1/unprotect")).status,
            200);
  res = router.Serve(Request("POST", "/api/v1/groups/web/members/gone/protect"));
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(nlohmann::json::parse(res.body)["error"], "gone is not a member of group web");
  res = router.Serve(Request("POST", "/api/v1/groups/web/members/readonly/protect"));
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(nlohmann::json::parse(res.body)["error"], "storing it failed");
  EXPECT_THAT(agent.lifecycle_calls,
              ElementsAre("web pause", "web resume", "db pause", "web web-1 protect",
                          "web web-1 unprotect", "web gone protect", "web readonly protect"));

  FakeAgent off;
  off.lifecycle = false;
  router = MakeAgentRouter(off.Callbacks());
  for (const char* path :
       {"/api/v1/groups/web/pause", "/api/v1/groups/web/resume",
        "/api/v1/groups/web/members/web-1/protect", "/api/v1/groups/web/members/web-1/unprotect"}) {
    res = router.Serve(Request("POST", path));
    EXPECT_EQ(res.status, 403) << path;
    EXPECT_THAT(res.body, HasSubstr("--web.enable-lifecycle")) << path;
  }
  EXPECT_TRUE(off.lifecycle_calls.empty());
}

}  // namespace
}  // namespace virtscale
