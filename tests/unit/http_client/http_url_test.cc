#include "common/http_url.h"

#include <gtest/gtest.h>

#include <utility>

namespace virtscale {
namespace {

TEST(ParseHttpUrl, AcceptsAndRejects) {
  std::string why;
  auto u = ParseHttpUrl("http://localhost/metrics", why);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->SchemeHostPort(), "http://localhost:80");
  u = ParseHttpUrl("https://h?x=1", why);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/?x=1");
  const std::pair<const char*, const char*> bad[] = {
      {"localhost:9090", "want http://HOST[:PORT][/PATH] or https://..."},
      {"http://", "missing host"},
      {"http://:80/", "missing host"},
      {"http://h:/", "invalid port \"\""},
      {"http://h:0", "invalid port \"0\""},
      {"http://h:8o", "invalid port \"8o\""},
      {"http://h a/", "contains whitespace or control characters"},
      {"http://h/#frag", "fragments are not supported"},
      {"http://[::1/", "unterminated IPv6 address"},
      {"http://[::1]x/", "unexpected text after IPv6 address"},
      {"http://[zz]/", "invalid IPv6 address"},
      {"http://h%41/", "invalid host \"h%41\""},
  };
  for (const auto& [text, reason] : bad) {
    EXPECT_FALSE(ParseHttpUrl(text, why)) << text;
    EXPECT_EQ(why, reason) << text;
  }
}

TEST(ResolveLocation, ResolvesAgainstTheCurrentUrl) {
  std::string why;
  const auto base = ParseHttpUrl("http://h:8080/a/b/c?q=1", why);
  ASSERT_TRUE(base);
  const std::pair<const char*, const char*> cases[] = {
      {"https://other/x", "https://other:443/x"},
      {"HTTP://H:8080", "http://H:8080/"},
      {"//other:81/x?y", "http://other:81/x?y"},
      {"/x", "http://h:8080/x"},
      {"/x/./y/../z#frag", "http://h:8080/x/z"},
      {"?p=2", "http://h:8080/a/b/c?p=2"},
      {"d", "http://h:8080/a/b/d"},
      {"./d/", "http://h:8080/a/b/d/"},
      {"..", "http://h:8080/a/"},
      {"../../../../d?x=/../", "http://h:8080/d?x=/../"},
      {"d/.", "http://h:8080/a/b/d/"},
  };
  for (const auto& [location, want] : cases) {
    auto url = ResolveLocation(*base, location, why);
    ASSERT_TRUE(url) << location << ": " << why;
    EXPECT_EQ(url->SchemeHostPort() + url->path, want) << location;
  }
  const std::pair<const char*, const char*> bad[] = {
      {"", "empty Location"},
      {"#top", "empty Location"},
      {"ftp://h/x", "scheme must be http or https"},
      {"mailto:a@b", "want http://HOST[:PORT][/PATH] or https://..."},
      {"http://u:p@h/", "credentials in the URL are not supported; use basic_auth"},
      {"/a\tb", "contains whitespace or control characters"},
      {"//", "missing host"},
  };
  for (const auto& [location, reason] : bad) {
    EXPECT_FALSE(ResolveLocation(*base, location, why)) << location;
    EXPECT_EQ(why, reason) << location;
  }
}

TEST(SameOrigin, ComparesSchemeHostAndPort) {
  std::string why;
  auto url = [&](const char* text) {
    auto u = ParseHttpUrl(text, why);
    EXPECT_TRUE(u) << text << ": " << why;
    return u.value_or(HttpUrl{});
  };
  EXPECT_TRUE(SameOrigin(url("http://h/a"), url("HTTP://H:80/b?c")));
  EXPECT_TRUE(SameOrigin(url("https://[::1]/"), url("https://[::1]:443/x")));
  EXPECT_FALSE(SameOrigin(url("http://h/"), url("https://h/")));
  EXPECT_FALSE(SameOrigin(url("http://h/"), url("http://h:81/")));
  EXPECT_FALSE(SameOrigin(url("http://h/"), url("http://h.example/")));
  EXPECT_FALSE(SameOrigin(url("http://127.0.0.1/"), url("http://localhost/")));
}

TEST(PercentEncode, KeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(PercentEncode("sum(x{a=\"b c\"})"), "sum%28x%7Ba%3D%22b%20c%22%7D%29");
  EXPECT_EQ(PercentEncode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(PercentEncode("\xc3\xa9&"), "%C3%A9%26");
}

}  // namespace
}  // namespace virtscale
