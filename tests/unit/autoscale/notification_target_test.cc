#include "autoscale/notification_target.h"

#include <gtest/gtest.h>

namespace virtscale::autoscale {
namespace {

using namespace std::chrono_literals;

std::vector<NotificationTarget> Decode(const std::string& yaml, Diagnostics& diags) {
  auto root = LoadYamlString(yaml, diags);
  if (!root) return {};
  return DecodeNotifications((*root)["notifications"], "notifications", diags);
}

std::vector<std::string> Messages(const Diagnostics& diags) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diags.list()) out.push_back(d.ToString());
  return out;
}

TEST(DecodeNotifications, DecodesEveryKeyWithDefaults) {
  Diagnostics diags("virtscale.yml");
  auto targets = Decode(R"(notifications:
  - url: http://127.0.0.1:9000/hook?token=x
  - url: https://hooks.example.org/v1
    events: [failed, scale_up]
    timeout: 2s
)",
                        diags);
  ASSERT_TRUE(diags.ok()) << diags.ToString();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].events.size(), AllNotificationEvents().size());
  EXPECT_EQ(targets[0].timeout, 5s);
  EXPECT_EQ(targets[0].Label(), "http://127.0.0.1:9000/hook");
  EXPECT_EQ(targets[1].url.scheme, "https");
  EXPECT_EQ(targets[1].events,
            (std::set<NotificationEvent>{NotificationEvent::kFailed, NotificationEvent::kScaleUp}));
  EXPECT_EQ(targets[1].timeout, 2s);
}

TEST(DecodeNotifications, AbsentOrNullIsEmpty) {
  Diagnostics diags("virtscale.yml");
  EXPECT_TRUE(Decode("other: 1\n", diags).empty());
  EXPECT_TRUE(Decode("notifications:\n", diags).empty());
  EXPECT_TRUE(diags.ok()) << diags.ToString();
}

TEST(DecodeNotifications, ErrorsNameFileLineAndKey) {
  Diagnostics diags("virtscale.yml");
  auto targets = Decode(R"(notifications:
  - events: [scale_up]
  - url: ftp://h/x
  - url: http://h/x
    events: [scale_up, exploded]
  - url: http://h/x
    timeout: 10ms
  - url: http://h/x
    retries: 3
  - url: http://h/x
    events: []
)",
                        diags);
  EXPECT_TRUE(targets.empty());
  const auto m = Messages(diags);
  ASSERT_EQ(m.size(), 6u) << diags.ToString();
  EXPECT_EQ(m[0].rfind("virtscale.yml:2: notifications[0]", 0), 0u) << m[0];
  EXPECT_NE(m[0].find("url"), std::string::npos) << m[0];
  EXPECT_EQ(
      m[1].rfind("virtscale.yml:3: notifications[1].url: \"ftp://h/x\" is not an http(s) URL", 0),
      0u)
      << m[1];
  EXPECT_EQ(m[2],
            "virtscale.yml:5: notifications[2].events: unknown event \"exploded\" (expected "
            "scale_up, scale_down, replace, failed, paused, resumed)");
  EXPECT_EQ(m[3], "virtscale.yml:7: notifications[3].timeout: must be between 100ms and 1m");
  EXPECT_NE(m[4].find("virtscale.yml:9: notifications[4].retries: unknown key"), std::string::npos)
      << m[4];
  EXPECT_EQ(m[5].rfind("virtscale.yml:11: notifications[5].events: must not be empty", 0), 0u)
      << m[5];
}

TEST(DecodeNotifications, ListIsBounded) {
  Diagnostics diags("virtscale.yml");
  std::string yaml = "notifications:\n";
  for (size_t i = 0; i <= kMaxNotificationTargets; ++i)
    yaml += "  - url: http://h/" + std::to_string(i) + "\n";
  EXPECT_TRUE(Decode(yaml, diags).empty());
  ASSERT_EQ(diags.errors(), 1u);
  EXPECT_NE(diags.ToString().find("at most 16 targets, got 17"), std::string::npos);
  Diagnostics map_diags("virtscale.yml");
  Decode("notifications: {url: http://h/}\n", map_diags);
  EXPECT_NE(map_diags.ToString().find("notifications: expected a list"), std::string::npos);
}

}  // namespace
}  // namespace virtscale::autoscale
