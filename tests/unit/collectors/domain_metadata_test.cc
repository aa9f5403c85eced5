#include "collectors/domain_metadata.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

TEST(DomainMetadata, RoundTripsAndEscapes) {
  VirtscaleMetadata meta{"web<&>", "/etc/virtscale/templates/web.xml", 1764194400,
                         "0b4e3f4a-5d7c-4e2a-9c1b-2f6a8d9e0c11"};
  std::string xml = FormatVirtscaleMetadata(meta);
  EXPECT_NE(xml.find(kMetadataNamespace), std::string::npos);
  EXPECT_NE(xml.find("web&lt;&amp;&gt;"), std::string::npos);
  auto parsed = ParseVirtscaleMetadata(xml);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->group, "web<&>");
  EXPECT_EQ(parsed->template_path, meta.template_path);
  EXPECT_EQ(parsed->created_at_unix, 1764194400);
  EXPECT_EQ(parsed->uuid, meta.uuid);
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

}  // namespace
}  // namespace virtscale
