#include "common/yaml_reader.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

TEST(MapReader, ReadsTypedValuesAndReportsUnknownKeys) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("a:\n  name: x\n  n: 3\n  d: 1h30m\n  typo: 1\n", diags);
  ASSERT_TRUE(root);
  MapReader a((*root)["a"], "a", diags);
  std::string name;
  int64_t n = 0;
  Duration d{};
  EXPECT_TRUE(a.Read("name", name));
  EXPECT_TRUE(a.Read("n", n));
  EXPECT_TRUE(a.ReadDuration("d", d));
  a.Finish();
  EXPECT_EQ(name, "x");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(d, std::chrono::minutes(90));
  ASSERT_EQ(diags.list().size(), 1u);
  EXPECT_EQ(diags.list()[0].ToString(), "c.yml:5: a.typo: unknown key");
}

TEST(MapReader, SuggestsTheNearestKnownKey) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("cooldwon: 5s\nzzzzzzzz: 1\n", diags);
  ASSERT_TRUE(root);
  MapReader r(*root, "scale_up", diags);
  r.Get("cooldown");
  r.Get("step");
  r.Finish();
  ASSERT_EQ(diags.list().size(), 2u);
  EXPECT_EQ(diags.list()[0].ToString(),
            "c.yml:1: scale_up.cooldwon: unknown key (did you mean \"cooldown\"?)");
  EXPECT_EQ(diags.list()[1].ToString(), "c.yml:2: scale_up.zzzzzzzz: unknown key");
}

TEST(MapReader, DuplicateKeysNameBothLines) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("min: 2\nmax: 4\nmin: 3\n", diags);
  ASSERT_TRUE(root);
  MapReader r(*root, "groups[0]", diags);
  ASSERT_EQ(diags.list().size(), 1u);
  EXPECT_EQ(diags.list()[0].ToString(), "c.yml:3: groups[0].min: duplicate key (first at line 1)");
}

TEST(LoadYaml, ATabInTheIndentationIsNamed) {
  Diagnostics diags("c.yml");
  EXPECT_FALSE(LoadYamlString("libvirt:\n  uri: x\n\tsample_interval: 5s\n", diags));
  ASSERT_EQ(diags.list().size(), 1u);
  EXPECT_NE(diags.list()[0].message.find(
                "(line 3 is indented with a tab; YAML indents with spaces only)"),
            std::string::npos)
      << diags.ToString();
  Diagnostics fine("c.yml");
  EXPECT_TRUE(LoadYamlString("a: \"x\ty\"\n", fine));  // a tab inside a value is no indent
}

TEST(MapReader, NonFiniteNumbersAreErrors) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("a: .nan\nb: .inf\nc: 1e400\nd: 2.5\n", diags);
  ASSERT_TRUE(root);
  MapReader r(*root, "", diags);
  double a = 0, b = 0, c = 0, d = 0;
  EXPECT_FALSE(r.Read("a", a));
  EXPECT_FALSE(r.Read("b", b));
  EXPECT_FALSE(r.Read("c", c));
  EXPECT_TRUE(r.Read("d", d));
  EXPECT_EQ(d, 2.5);
  EXPECT_EQ(diags.list().size(), 3u) << diags.ToString();
}

TEST(MapReader, ReportsWrongTypesAndBadDurationsWithLine) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("n: abc\nd: 5x\nl: [1, [2]]\nm: 7\n", diags);
  ASSERT_TRUE(root);
  MapReader r(*root, "", diags);
  int64_t n = 0;
  Duration d{};
  std::vector<std::string> l;
  std::map<std::string, std::string> m;
  EXPECT_FALSE(r.Read("n", n));
  EXPECT_FALSE(r.ReadDuration("d", d));
  EXPECT_FALSE(r.ReadStringList("l", l));
  EXPECT_FALSE(r.ReadStringMap("m", m));
  ASSERT_EQ(diags.list().size(), 4u);
  EXPECT_EQ(diags.list()[0].ToString(), "c.yml:1: n: expected an integer, got \"abc\"");
  EXPECT_EQ(diags.list()[1].line, 2);
  EXPECT_NE(diags.list()[1].message.find("invalid duration \"5x\""), std::string::npos);
  EXPECT_EQ(diags.list()[2].line, 3);
  EXPECT_EQ(diags.list()[3].ToString(), "c.yml:4: m: expected a mapping of strings");
}

// A key written with no value used to read as absent and drop its group silently.
TEST(MapReader, KeyWithoutValueIsAnError) {
  Diagnostics diags("r.yml");
  auto root = LoadYamlString("cooldown:\nmin: ~\n", diags);
  ASSERT_TRUE(root);
  MapReader r(*root, "g", diags);
  Duration d{};
  int64_t n = 7;
  EXPECT_FALSE(r.ReadDuration("cooldown", d));
  EXPECT_FALSE(r.Read("min", n));
  EXPECT_EQ(n, 7);
  ASSERT_EQ(diags.list().size(), 2u);
  EXPECT_EQ(diags.list()[0].ToString(), "r.yml:1: g.cooldown: expected a duration, got no value");
  EXPECT_EQ(diags.list()[1].ToString(), "r.yml:2: g.min: expected an integer, got no value");
}

TEST(LoadYaml, SyntaxErrorHasLine) {
  Diagnostics diags("bad.yml");
  EXPECT_FALSE(LoadYamlString("a: 1\nb: [1, 2\nc: 3\n", diags));
  ASSERT_EQ(diags.list().size(), 1u);
  EXPECT_EQ(diags.list()[0].file, "bad.yml");
  EXPECT_GT(diags.list()[0].line, 1);
  EXPECT_NE(diags.list()[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(MapReader, NonMapIsReported) {
  Diagnostics diags("c.yml");
  auto root = LoadYamlString("libvirt: [1]\n", diags);
  MapReader r((*root)["libvirt"], "libvirt", diags);
  EXPECT_FALSE(r.valid());
  EXPECT_EQ(diags.list().at(0).ToString(), "c.yml:1: libvirt: expected a mapping");
}

TEST(MapReader, RequireReportsMissingKey) {
  Diagnostics diags("r.yml");
  auto root = LoadYamlString("x: 1\n", diags);
  MapReader r(*root, "groups[0]", diags);
  EXPECT_FALSE(r.Require("name"));
  EXPECT_EQ(diags.list().at(0).ToString(), "r.yml:1: groups[0].name: missing required key");
}

}  // namespace
}  // namespace virtscale
