#include "collectors/metadata_labels.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace virtscale {
namespace {

constexpr const char* kNova = "http://openstack.org/xmlns/libvirt/nova/1.1";

std::string NovaDomainXml() {
  std::ifstream in(std::string(VIRTSCALE_TESTDATA) + "/domains/nova-instance.xml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

MetadataLabels Labels(const std::vector<std::vector<std::string>>& specs) {
  MetadataLabels labels;
  for (const auto& s : specs) {
    std::string error;
    EXPECT_TRUE(labels.Add(s[0], s[1], s[2], error)) << s[0] << ": " << error;
  }
  return labels;
}

TEST(MetadataLabels, ReadsNovaProjectUserAndFlavorFromTheNovaElement) {
  MetadataLabels labels = Labels({{"project", kNova, "/instance/owner/project/@uuid"},
                                  {"project_name", kNova, "/instance/owner/project"},
                                  {"user", kNova, "/instance/owner/user"},
                                  {"flavor", kNova, "string(/instance/flavor/@name)"}});
  EXPECT_EQ(labels.Names(),
            (std::vector<std::string>{"project", "project_name", "user", "flavor"}));
  EXPECT_EQ(labels.Extract(NovaDomainXml()),
            (std::vector<std::string>{"a3f1e6c2b7d94e0f8c5a2b1d0e9f8c7b", "web-team", "alice",
                                      "m1.small"}));
}

TEST(MetadataLabels, MatchesTheNamespaceWhateverItsPrefix) {
  MetadataLabels labels = Labels({{"project", kNova, "/instance/owner/project"},
                                  {"other", "http://example.org/x", "/instance/owner/project"}});
  const std::string xml =
      "<domain><metadata>"
      "<vs:scale xmlns:vs='http://virtscale.org/xmlns/scale/1.0' group='web'/>"
      "<n:instance xmlns:n='http://openstack.org/xmlns/libvirt/nova/1.1'>"
      "<n:owner><n:project>p1</n:project></n:owner></n:instance>"
      "</metadata></domain>";
  EXPECT_EQ(labels.Extract(xml), (std::vector<std::string>{"p1", ""}));
  // Default namespace instead of a prefix.
  const std::string unprefixed =
      "<domain><metadata><instance xmlns='http://openstack.org/xmlns/libvirt/nova/1.1'>"
      "<owner><project>p2</project></owner></instance></metadata></domain>";
  EXPECT_EQ(labels.Extract(unprefixed), (std::vector<std::string>{"p2", ""}));
}

TEST(MetadataLabels, AbsentOrBrokenInputGivesEmptyValues) {
  MetadataLabels labels = Labels({{"project", kNova, "/instance/owner/project"}});
  EXPECT_EQ(labels.Extract("<domain><name>plain</name></domain>"), std::vector<std::string>{""});
  EXPECT_EQ(labels.Extract("<domain><metadata>"), std::vector<std::string>{""});
  EXPECT_EQ(labels.Extract(""), std::vector<std::string>{""});
  EXPECT_TRUE(MetadataLabels().Extract(NovaDomainXml()).empty());
}

TEST(MetadataLabels, ValuesAreBoundedValidUtf8) {
  MetadataLabels labels = Labels({{"name", kNova, "/instance/name"}});
  const std::string prefix =
      "<domain><metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
      "<nova:name>";
  const std::string suffix = "</nova:name></nova:instance></metadata></domain>";
  const std::string huge = labels.Extract(prefix + std::string(100000, 'x') + suffix)[0];
  EXPECT_LE(huge.size(), MetadataLabels::kMaxValueBytes + 3);  // cut, with "..."
  EXPECT_EQ(huge.substr(0, 10), "xxxxxxxxxx");
  EXPECT_EQ(labels.Extract(prefix + "caf\xC3" + suffix)[0], "caf\xEF\xBF\xBD");  // U+FFFD
}

TEST(MetadataLabels, DeepNestingIsCutNotRecursedWithoutBound) {
  MetadataLabels labels = Labels({{"deep", kNova, "count(//x)"}});
  std::string xml =
      "<domain><metadata><nova:instance "
      "xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>";
  for (int i = 0; i < 5000; ++i) xml += "<x>";
  for (int i = 0; i < 5000; ++i) xml += "</x>";
  xml += "</nova:instance></metadata></domain>";
  const std::vector<std::string> values = labels.Extract(xml);
  ASSERT_EQ(values.size(), 1u);
  EXPECT_LT(std::stoi(values[0]), 5000);
  EXPECT_GT(std::stoi(values[0]), 10);
}

TEST(MetadataLabels, RejectsBadNamesNamespacesAndXPaths) {
  MetadataLabels labels;
  std::string error;
  EXPECT_FALSE(labels.Add("domain", kNova, "/instance", error));
  EXPECT_NE(error.find("not a usable label name"), std::string::npos) << error;
  EXPECT_FALSE(labels.Add("9lives", kNova, "/instance", error));
  EXPECT_FALSE(labels.Add("__reserved", kNova, "/instance", error));
  EXPECT_FALSE(labels.Add("with-dash", kNova, "/instance", error));
  EXPECT_FALSE(labels.Add("p", "", "/instance", error));
  EXPECT_NE(error.find("namespace"), std::string::npos) << error;
  EXPECT_FALSE(labels.Add("p", kNova, "/instance/[", error));
  EXPECT_NE(error.find("xpath \"/instance/[\": "), std::string::npos) << error;
  EXPECT_FALSE(labels.Add("p", kNova, "", error));
  EXPECT_TRUE(labels.empty());
  EXPECT_TRUE(labels.Add("p", kNova, "/instance", error)) << error;
  EXPECT_FALSE(labels.Add("p", kNova, "/instance", error));
  EXPECT_NE(error.find("defined twice"), std::string::npos) << error;
  for (size_t i = 1; i < MetadataLabels::kMaxLabels; ++i) {
    EXPECT_TRUE(labels.Add("l" + std::to_string(i), kNova, "/instance", error)) << error;
  }
  EXPECT_FALSE(labels.Add("one_too_many", kNova, "/instance", error));
  EXPECT_NE(error.find("at most"), std::string::npos) << error;
}

TEST(MetadataLabels, EqualWhenSameLabelsInSameOrder) {
  MetadataLabels a = Labels({{"p", kNova, "/instance"}, {"q", kNova, "/instance/name"}});
  MetadataLabels b = Labels({{"p", kNova, "/instance"}, {"q", kNova, "/instance/name"}});
  MetadataLabels c = Labels({{"q", kNova, "/instance/name"}, {"p", kNova, "/instance"}});
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
}

}  // namespace
}  // namespace virtscale
