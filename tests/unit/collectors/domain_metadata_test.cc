#include "collectors/domain_metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace virtscale {
namespace {

TEST(DomainMetadata, RoundTripsAndEscapes) {
  VirtscaleMetadata meta{"web<&>", "/etc/virtscale/templates/web.xml", 1764194400,
                         "0b4e3f4a-5d7c-4e2a-9c1b-2f6a8d9e0c11", "ab12"};
  std::string xml = FormatVirtscaleMetadata(meta);
  EXPECT_NE(xml.find(kMetadataNamespace), std::string::npos);
  EXPECT_NE(xml.find("web&lt;&amp;&gt;"), std::string::npos);
  auto parsed = ParseVirtscaleMetadata(xml);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->group, "web<&>");
  EXPECT_EQ(parsed->template_path, meta.template_path);
  EXPECT_EQ(parsed->created_at_unix, 1764194400);
  EXPECT_EQ(parsed->uuid, meta.uuid);
  EXPECT_EQ(parsed->template_hash, "ab12");
  EXPECT_NE(xml.find("<virtscale:template-hash>ab12</virtscale:template-hash>"), std::string::npos);
}

TEST(DomainMetadata, AcceptsOtherPrefixAsLibvirtReturnsIt) {
  auto parsed = ParseVirtscaleMetadata(
      "<vs:instance xmlns:vs=\"http://virtscale.org/xmlns/domain/1.0\"><vs:group>db</vs:group>"
      "<vs:created-at>5</vs:created-at></vs:instance>");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->group, "db");
  EXPECT_EQ(parsed->created_at_unix, 5);
}

TEST(DomainMetadata, RejectsMalformedOrGrouplessElements) {
  EXPECT_FALSE(ParseVirtscaleMetadata("<instance><group>"));
  EXPECT_FALSE(ParseVirtscaleMetadata("<instance><template>x</template></instance>"));
  EXPECT_FALSE(ParseVirtscaleMetadata("<other><group>x</group></other>"));
  EXPECT_FALSE(ParseVirtscaleMetadata(""));
}

TEST(ScaleStamp, RoundTripsAndEscapes) {
  ScaleStamp stamp{"web<&>", 1764194400, 1764194500};
  std::string xml = FormatScaleStamp(stamp);
  EXPECT_NE(xml.find(kScaleStampNamespace), std::string::npos);
  EXPECT_NE(xml.find("up=\"1764194400\""), std::string::npos) << xml;
  auto parsed = ParseScaleStamp(xml);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->group, "web<&>");
  EXPECT_EQ(parsed->last_up_unix, 1764194400);
  EXPECT_EQ(parsed->last_down_unix, 1764194500);
}

TEST(ScaleStamp, AcceptsOtherPrefixAndMissingDirections) {
  auto parsed = ParseScaleStamp(
      "<s:scale xmlns:s=\"http://virtscale.org/xmlns/scale/1.0\" group=\"db\" "
      "down=\"42\"/>");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->group, "db");
  EXPECT_EQ(parsed->last_up_unix, 0);
  EXPECT_EQ(parsed->last_down_unix, 42);
}

TEST(ScaleStamp, AbsurdTimesReadAsNever) {
  for (const char* bad : {"-5", "1e9", "12abc", " 7", "", "253402300800", "99999999999999999999"}) {
    auto parsed = ParseScaleStamp(std::string("<scale group=\"web\" up=\"") + bad +
                                  "\" down=\"253402300799\"/>");
    ASSERT_TRUE(parsed) << bad;
    EXPECT_EQ(parsed->last_up_unix, 0) << bad;
    EXPECT_EQ(parsed->last_down_unix, 253402300799) << bad;  // the last second of 9999
  }
}

TEST(ScaleStamp, RejectsMalformedOrGrouplessElements) {
  EXPECT_FALSE(ParseScaleStamp("<scale group=\"web\""));
  EXPECT_FALSE(ParseScaleStamp("<scale up=\"5\"/>"));
  EXPECT_FALSE(ParseScaleStamp("<instance group=\"web\"/>"));
  EXPECT_FALSE(ParseScaleStamp(""));
}

TEST(LifecycleStamp, RoundTripsWithAndWithoutPrefix) {
  LifecycleStamp stamp{"web<&>", true, 1764194400123, true, 1764194400456};
  for (bool bare : {false, true}) {
    const std::string xml = FormatLifecycleStamp(stamp, bare);
    auto parsed = ParseLifecycleStamp(xml);
    ASSERT_TRUE(parsed) << xml;
    EXPECT_EQ(parsed->group, "web<&>");
    EXPECT_TRUE(parsed->paused);
    EXPECT_EQ(parsed->paused_changed_ms, 1764194400123);
    EXPECT_TRUE(parsed->is_protected);
    EXPECT_EQ(parsed->protected_changed_ms, 1764194400456);
  }
  EXPECT_THAT(FormatLifecycleStamp(stamp), ::testing::HasSubstr(kLifecycleNamespace));
}

TEST(LifecycleStamp, AnythingButTrueIsFalseAndAbsurdTimesAreNever) {
  for (const char* bad : {"-5", "1e9", "12abc", "", "253402300800000", "99999999999999999999"}) {
    auto parsed = ParseLifecycleStamp(std::string("<x:lifecycle group=\"web\" paused=\"yes\" "
                                                  "paused-changed=\"") +
                                      bad + "\" protected=\"TRUE\"/>");
    ASSERT_TRUE(parsed) << bad;
    EXPECT_FALSE(parsed->paused);
    EXPECT_FALSE(parsed->is_protected);
    EXPECT_EQ(parsed->paused_changed_ms, 0) << bad;
    EXPECT_EQ(parsed->protected_changed_ms, 0);
  }
}

TEST(LifecycleStamp, RejectsMalformedOrGrouplessElements) {
  EXPECT_FALSE(ParseLifecycleStamp("<lifecycle group=\"web\""));
  EXPECT_FALSE(ParseLifecycleStamp("<lifecycle paused=\"true\"/>"));
  EXPECT_FALSE(ParseLifecycleStamp("<scale group=\"web\"/>"));
  EXPECT_FALSE(ParseLifecycleStamp(""));
}

}  // namespace
}  // namespace virtscale
