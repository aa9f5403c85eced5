#include <crypt.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/http_server.h"
#include "agent/web_config.h"

namespace virtscale {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

std::string BcryptHash(const std::string& password, unsigned long cost = 4) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  EXPECT_NE(crypt_gensalt_rn("$2y$", cost, nullptr, 0, salt, sizeof salt), nullptr);
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

TEST(BasicAuthenticator, RejectsNulInUserOrPassword) {
  BasicAuthenticator auth({{"prometheus", BcryptHash("s3cret")}});
  // crypt(3) alone accepts these: it stops reading at the NUL.
  EXPECT_FALSE(auth.Check(Basic("prometheus:s3cret\0junk"s)));
  EXPECT_FALSE(auth.Check(Basic("prometheus:s3cret\0"s)));
  EXPECT_FALSE(auth.Check(Basic("prometheus\0x:s3cret"s)));
  EXPECT_TRUE(auth.Check(Basic("prometheus:s3cret")));
  EXPECT_FALSE(auth.Check(Basic("prometheus:s3cret\0junk"s)));  // not through the cache either
}

// A clock that moves only when a hook moves it: a bcrypt "takes" 1ms at cost 4
// and `slow` otherwise (the real bcrypt still runs), and sleep_until jumps to
// its target. Records which hashes were checked and how long each sleep was.
class FakeTiming {
 public:
  using Clock = BasicAuthHooks::Clock;
  BasicAuthHooks Hooks() {
    BasicAuthHooks h;
    h.now = [this] { return now; };
    h.sleep_until = [this](Clock::time_point t) {
      sleeps.push_back(t - now);
      now = std::max(now, t);
    };
    h.verify = [this](const std::string& password, const std::string& hash) {
      hashes.push_back(hash);
      now += hash.starts_with("$2y$04$") ? Clock::duration(1ms) : slow;
      return VerifyCryptHash(password, hash);
    };
    return h;
  }
  Clock::time_point now;
  Clock::duration slow = 100ms;
  std::vector<std::string> hashes;
  std::vector<Clock::duration> sleeps;
};

TEST(BasicAuthenticator, EveryFailureTakesAsLongAsABcryptAtTheHighestCost) {
  FakeTiming t;
  const std::string cheap = BcryptHash("s3cret", 4), dear = BcryptHash("s3cret", 6);
  BasicAuthenticator auth({{"cheap", cheap}, {"dear", dear}}, t.Hooks());
  // Construction timed one bcrypt of the dummy hash, at the highest cost.
  ASSERT_EQ(t.hashes.size(), 1u);
  const std::string dummy = t.hashes[0];
  EXPECT_TRUE(dummy.starts_with("$2y$06$")) << dummy;
  EXPECT_NE(dummy, dear);
  EXPECT_EQ(auth.failure_time(), 100ms);

  // (credentials, the hash they must be checked against)
  const std::pair<std::string, std::string> failures[] = {
      {"cheap:wrong", cheap},   {"dear:wrong", dear},           {"nobody:wrong", dummy},
      {"nobody:s3cret", dummy}, {"cheap:s3cret\0junk"s, dummy}, {"cheap\0:s3cret"s, dummy},
  };
  for (const auto& [credentials, hash] : failures) {
    const auto before = t.now;
    EXPECT_FALSE(auth.Check(Basic(credentials))) << credentials;
    EXPECT_EQ(t.hashes.back(), hash) << credentials;
    EXPECT_EQ(t.now - before, 100ms) << credentials;
  }
  // Only the cheap hash's failure had to wait: 100ms after its bcrypt began.
  EXPECT_EQ(t.sleeps, std::vector<FakeTiming::Clock::duration>{99ms});

  // A success is not padded, and is cached.
  const auto before = t.now;
  EXPECT_TRUE(auth.Check(Basic("cheap:s3cret")));
  EXPECT_EQ(t.now - before, 1ms);
  const size_t checked = t.hashes.size();
  EXPECT_TRUE(auth.Check(Basic("cheap:s3cret")));
  EXPECT_EQ(t.hashes.size(), checked);
  EXPECT_EQ(t.sleeps.size(), 1u);
}

TEST(BasicAuthenticator, FailureTimeFollowsTheSlowestRecentRun) {
  FakeTiming t;
  BasicAuthenticator auth({{"cheap", BcryptHash("s3cret", 4)}, {"dear", BcryptHash("x", 5)}},
                          t.Hooks());
  EXPECT_EQ(auth.failure_time(), 100ms);
  t.slow = 300ms;  // the machine got busy
  EXPECT_FALSE(auth.Check(Basic("nobody:x")));
  EXPECT_EQ(auth.failure_time(), 300ms);
  auto before = t.now;
  EXPECT_FALSE(auth.Check(Basic("cheap:wrong")));
  EXPECT_EQ(t.now - before, 300ms);
  t.slow = 100ms;  // ... and calm again: the slow run ages out after 8 newer ones
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(auth.Check(Basic("nobody:x")));
  EXPECT_EQ(auth.failure_time(), 300ms);
  EXPECT_FALSE(auth.Check(Basic("nobody:x")));
  EXPECT_EQ(auth.failure_time(), 100ms);
  before = t.now;
  EXPECT_FALSE(auth.Check(Basic("cheap:wrong")));
  EXPECT_EQ(t.now - before, 100ms);
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
  // A self-signed certificate and its key, NAME.crt and NAME.key in dir_.
  void MakeCertificate(const std::string& name) {
    const std::string cmd =
        "cd '" + dir_.string() +
        "' && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name + " -keyout " +
        name + ".key -out " + name + ".crt 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::filesystem::path dir_;
};

TEST_F(WebConfigFile, DecodesExporterToolkitKeys) {
  std::string path = Write(
      "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
      "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
      "  min_version: TLS13\nbasic_auth_users:\n  alice: "
      "$2y$04$abcdefghijklmnopqrstuu5Zg4Yx3w1bXQdFQ1m3pVh0XrQm1vKeA\n");
  MakeCertificate("s");
  MakeCertificate("ca");
  Diagnostics diags;
  auto cfg = LoadWebConfig(path, diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  ASSERT_TRUE(cfg->tls);
  EXPECT_EQ(cfg->tls->cert_file, (dir_ / "s.crt").string());
  EXPECT_EQ(cfg->tls->client_ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(cfg->tls->min_version, "TLS13");
  EXPECT_EQ(cfg->basic_auth_users.size(), 1u);
}

TEST_F(WebConfigFile, LoadsTheCertificateAndKeyAsTheServerWould) {
  std::string path = Write("tls_server_config:\n  cert_file: a.crt\n  key_file: b.key\n");
  MakeCertificate("a");
  Diagnostics mismatch;
  EXPECT_FALSE(LoadWebConfig(path, mismatch));
  EXPECT_EQ(mismatch.ToString(), path + ":2: tls_server_config: cannot read key_file " +
                                     (dir_ / "b.key").string() + ": No such file or directory\n");
  MakeCertificate("b");
  Diagnostics other_key;
  EXPECT_FALSE(LoadWebConfig(path, other_key));
  EXPECT_EQ(other_key.ToString(), path + ":2: tls_server_config: cannot load key_file " +
                                      (dir_ / "b.key").string() + ": key values mismatch\n");
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

TEST_F(WebConfigFile, RejectsUserNamesWithNul) {
  std::string path = Write(
      "basic_auth_users:\n  \"a\\0b\": "
      "$2y$04$abcdefghijklmnopqrstuu5Zg4Yx3w1bXQdFQ1m3pVh0XrQm1vKeA\n");
  Diagnostics diags;
  EXPECT_FALSE(LoadWebConfig(path, diags));
  EXPECT_EQ(diags.ToString(), path + ":2: basic_auth_users: user names cannot contain NUL\n");
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
