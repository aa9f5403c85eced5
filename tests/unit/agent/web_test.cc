#include <crypt.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "agent/http_server.h"
#include "agent/web_config.h"

namespace virtscale {
namespace {

std::string BcryptHash(const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2y$", 4, nullptr, 0, salt, sizeof salt), nullptr);
  crypt_data data;
  std::memset(&data, 0, sizeof data);
  const char* hash = crypt_rn(password.c_str(), salt, &data, sizeof data);
  EXPECT_NE(hash, nullptr);
  return hash;
}

std::string Basic(const std::string& user_pass) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8) |
                 uint8_t(user_pass[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(n >> s) & 63];
  }
  size_t rest = user_pass.size() - i;
  if (rest == 1) {
    uint32_t n = uint8_t(user_pass[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return "Basic " + out;
}

TEST(BasicAuthenticator, AcceptsOnlyMatchingBcryptCredentials) {
  BasicAuthenticator auth({{"prometheus", BcryptHash("s3cret")}});
  ASSERT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Check(Basic("prometheus:s3cret")));
  EXPECT_TRUE(auth.Check(Basic("prometheus:s3cret")));  // cached path
  EXPECT_FALSE(auth.Check(Basic("prometheus:wrong")));
  EXPECT_FALSE(auth.Check(Basic("nobody:s3cret")));
  EXPECT_FALSE(auth.Check(Basic("prometheus")));
  EXPECT_FALSE(auth.Check("Bearer abc"));
  EXPECT_FALSE(auth.Check("Basic !!!notbase64"));
  EXPECT_FALSE(auth.Check(""));
}

TEST(VerifyCryptHash, RejectsGarbageHashes) {
  EXPECT_FALSE(VerifyCryptHash("x", "not-a-hash"));
  EXPECT_FALSE(VerifyCryptHash("x", ""));
  EXPECT_TRUE(VerifyCryptHash("x", BcryptHash("x")));
}

class WebConfigFile : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    dir_ = std::filesystem::temp_directory_path() /
           ("virtscale-web-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    auto path = dir_ / "web.yml";
    std::ofstream(path) << text;
    return path.string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(WebConfigFile, DecodesExporterToolkitKeys) {
  std::string path = Write(
      "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
      "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
      "  min_version: TLS13\nbasic_auth_users:\n  alice: "
      "$2y$04$abcdefghijklmnopqrstuu5Zg4Yx3w1bXQdFQ1m3pVh0XrQm1vKeA\n");
  Diagnostics diags;
  auto cfg = LoadWebConfig(path, diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  ASSERT_TRUE(cfg->tls);
  EXPECT_EQ(cfg->tls->cert_file, (dir_ / "s.crt").string());
  EXPECT_EQ(cfg->tls->client_ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(cfg->tls->min_version, "TLS13");
  EXPECT_EQ(cfg->basic_auth_users.size(), 1u);
}

TEST_F(WebConfigFile, ReportsBadValuesWithLines) {
  std::string path = Write(
      "tls_server_config:\n  cert_file: s.crt\n  client_auth_type: Sometimes\n"
      "  min_version: SSL3\nbasic_auth_users:\n  bob: plaintext\nextra: 1\n");
  Diagnostics diags;
  EXPECT_FALSE(LoadWebConfig(path, diags));
  std::string all = diags.ToString();
  EXPECT_NE(all.find(path + ":2: tls_server_config.key_file: missing required key"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(path + ":3: tls_server_config.client_auth_type: unknown client auth type"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(path + ":4: tls_server_config.min_version: unknown TLS version"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(path + ":6: basic_auth_users.bob: not a bcrypt hash"), std::string::npos)
      << all;
  EXPECT_NE(all.find(path + ":7: extra: unknown key"), std::string::npos) << all;
}

TEST(ParseListenAddress, AcceptsPrometheusForms) {
  auto all = ParseListenAddress(":9177");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->host, "0.0.0.0");
  EXPECT_EQ(all->port, 9177);
  auto v4 = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  auto v6 = ParseListenAddress("[::1]:9177");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"9177", "host:", "host:99999", "::1:80", "[::1]", "h:12a"})
    EXPECT_FALSE(ParseListenAddress(bad)) << bad;
}

}  // namespace
}  // namespace virtscale
