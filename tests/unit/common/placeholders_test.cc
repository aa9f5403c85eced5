#include "common/placeholders.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

const PlaceholderValues kValues{.domain = "web 1", .group = "web", .address = "10.0.0.5"};

std::string Brackets(std::string_view s) { return "[" + std::string(s) + "]"; }

TEST(Placeholders, SubstitutesKnownNames) {
  EXPECT_EQ(SubstitutePlaceholders("{domain}/{group}/{address}/{domain}", kValues),
            "web 1/web/10.0.0.5/web 1");
  EXPECT_EQ(SubstitutePlaceholders("no placeholders", kValues), "no placeholders");
  EXPECT_EQ(SubstitutePlaceholders("", kValues), "");
}

TEST(Placeholders, OtherBracesAreLiteral) {
  EXPECT_EQ(SubstitutePlaceholders("{print $1} {} { domain} {{domain}} {", kValues),
            "{print $1} {} { domain} {web 1} {");
  std::string error;
  EXPECT_TRUE(CheckPlaceholders("awk '{print $1}' {} {Domain} {", error));
}

TEST(Placeholders, EscapeAppliesToValuesOnly) {
  EXPECT_EQ(SubstitutePlaceholders("a{domain}b{x}", kValues, Brackets), "a[web 1]b{x}");
}

TEST(Placeholders, UnknownNameIsAnError) {
  std::string error;
  EXPECT_TRUE(CheckPlaceholders("{domain} {group} {address}", error));
  EXPECT_FALSE(CheckPlaceholders("/bin/check {domian}", error));
  EXPECT_EQ(error, "unknown placeholder {domian} (known: {domain}, {group}, {address})");
}

TEST(Placeholders, UsesPlaceholder) {
  EXPECT_TRUE(UsesPlaceholder("http://{address}:80/", "address"));
  EXPECT_FALSE(UsesPlaceholder("http://{domain}:80/", "address"));
  EXPECT_FALSE(UsesPlaceholder("address", "address"));
}

TEST(Placeholders, Argv) {
  EXPECT_EQ(SubstituteArgv({"/bin/drain", "{domain}", "--group={group}"}, kValues),
            (std::vector<std::string>{"/bin/drain", "web 1", "--group=web"}));
}

TEST(Placeholders, Environment) {
  auto env = PlaceholderEnvironment(kValues);
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0], (std::pair<std::string, std::string>{"VIRTSCALE_DOMAIN", "web 1"}));
  EXPECT_EQ(env[1], (std::pair<std::string, std::string>{"VIRTSCALE_GROUP", "web"}));
  EXPECT_EQ(env[2], (std::pair<std::string, std::string>{"VIRTSCALE_ADDRESS", "10.0.0.5"}));
}

}  // namespace
}  // namespace virtscale
