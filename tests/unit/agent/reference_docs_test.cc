// docs/configuration.md documents every key the loaders accept: each key a
// decoder looks up (MapReader's key observer) while loading the files of
// tests/testdata/every_section must appear in backticks in the reference.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "agent/check_config.h"
#include "agent/test_rules_command.h"
#include "common/yaml_reader.h"

namespace virtscale {
namespace {

std::set<std::pair<std::string, std::string>>& SeenKeys() {
  static std::set<std::pair<std::string, std::string>> keys;
  return keys;
}

void Record(std::string_view path, std::string_view key) {
  // "groups[3].scale_up" -> "groups.scale_up"; "sources.prom" -> "sources.*".
  std::string normal = std::regex_replace(std::string(path), std::regex(R"(\[\d+\])"), "");
  normal = std::regex_replace(normal, std::regex(R"(^sources\.[^.]+)"), "sources.*");
  SeenKeys().emplace(normal, std::string(key));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ReferenceDocs, EveryKeyTheLoadersAcceptIsDocumented) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/every_section/";
  MapReader::SetKeyObserver(Record);
  std::ostringstream check, test;
  const int check_rc = CheckConfigCommand(dir + "virtscale.yml", true, check);
  const int test_rc = TestRulesCommand({dir + "rules.test.yml"}, {}, test);
  MapReader::SetKeyObserver(nullptr);
  ASSERT_EQ(check_rc, 0) << check.str();
  ASSERT_EQ(test_rc, 0) << test.str();

  // Sections whose decoders must have run, so a fixture that stops covering
  // one fails here instead of passing on fewer keys.
  std::set<std::string> paths;
  for (const auto& [path, key] : SeenKeys()) paths.insert(path);
  for (const char* expected :
       {"", "libvirt", "web", "sources.*", "sources.*.basic_auth", "sources.*.tls_config", "groups",
        "groups.members", "tls_server_config", "groups.scale_up", "groups.scale_up.rate_limit",
        "groups.scale_up.when", "groups.scale_down", "groups.target", "tests", "tests.expect",
        "notifications", "groups.notifications"})
    EXPECT_TRUE(paths.contains(expected)) << "no key looked up under \"" << expected << "\"";
  for (const char* expected :
       {"groups.health", "groups.health.checks", "groups.hooks", "groups.hooks.before_scale_down",
        "groups.hooks.after_scale_up", "groups.schedules", "leader_election",
        "leader_election.etcd", "tests.pauses", "tests.follower"})
    EXPECT_TRUE(paths.contains(expected)) << "no key looked up under \"" << expected << "\"";

  const std::string docs = ReadAll(std::string(VIRTSCALE_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  size_t checked = 0;
  for (const auto& [path, key] : SeenKeys()) {
    // In backticks, alone or as part of a dotted name (`rate_limit.members`).
    const std::regex documented("`([A-Za-z_.*]*\\.)?" + key + "(\\.[A-Za-z_.]*)?`");
    EXPECT_TRUE(std::regex_search(docs, documented))
        << "docs/configuration.md does not document `" << key << "` (" << path << ")";
    ++checked;
  }
  EXPECT_GT(checked, 60u);  // the fixture reaches every section's keys
  std::cout << "checked " << checked << " keys\n";
}

}  // namespace
}  // namespace virtscale
