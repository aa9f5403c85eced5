#include "agent/web_config.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <memory>

#include "agent/config.h"
#include "agent/tls_context.h"
#include "common/sha256.h"

namespace virtscale {
namespace {

constexpr std::array<const char*, 5> kClientAuthTypes = {
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert"};
constexpr std::array<const char*, 4> kTlsVersions = {"TLS10", "TLS11", "TLS12", "TLS13"};

template <size_t N>
bool OneOf(const std::string& value, const std::array<const char*, N>& allowed) {
  for (const char* a : allowed)
    if (value == a) return true;
  return false;
}

// "$2y$10$" + 53 characters of bcrypt's base64 alphabet.
bool IsBcryptHash(const std::string& hash) {
  if (hash.size() != 60 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$')
    return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (!std::isdigit(static_cast<unsigned char>(hash[4])) ||
      !std::isdigit(static_cast<unsigned char>(hash[5])))
    return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (size_t i = 7; i < hash.size(); ++i) {
    const char c = hash[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '/') return false;
  }
  return true;
}

// The cost of a bcrypt hash ("$2y$10$..." -> 10); 0 when it is not one.
int CostOf(const std::string& hash) {
  return IsBcryptHash(hash) ? (hash[4] - '0') * 10 + (hash[5] - '0') : 0;
}

// A bcrypt hash of a random password at `cost`.
std::string MakeDummyHash(int cost) {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) std::memset(random, 0x5a, sizeof random);
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2y$", static_cast<unsigned long>(cost),
                       reinterpret_cast<const char*>(random), sizeof random, salt,
                       sizeof salt) == nullptr)
    return "";
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const std::string password = Sha256Hex(std::string(reinterpret_cast<char*>(random), 16));
  const char* hash = crypt_rn(password.c_str(), salt, data.get(), sizeof(crypt_data));
  return hash != nullptr && hash[0] != '*' ? std::string(hash) : "";
}

std::optional<std::string> DecodeBase64(const std::string& in) {
  std::string out((in.size() / 4 + 1) * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0 || in.size() % 4 != 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

bool VerifyCryptHash(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* result = crypt_rn(password.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  if (result == nullptr || result[0] == '*') return false;
  size_t len = std::strlen(result);
  return len == hash.size() && CRYPTO_memcmp(result, hash.data(), len) == 0;
}

std::optional<WebConfig> LoadWebConfig(const std::string& path, Diagnostics& diags) {
  Diagnostics local(path);
  auto root = LoadYamlFile(path, local);
  WebConfig cfg;
  if (root) {
    MapReader top(*root, "", local);
    if (top.Has("tls_server_config")) {
      MapReader tls(top.Get("tls_server_config"), "tls_server_config", local);
      TlsServerConfig t;
      if (tls.Require("cert_file")) tls.Read("cert_file", t.cert_file);
      if (tls.Require("key_file")) tls.Read("key_file", t.key_file);
      tls.Read("client_ca_file", t.client_ca_file);
      if (tls.Read("client_auth_type", t.client_auth_type) &&
          !OneOf(t.client_auth_type, kClientAuthTypes))
        tls.Error("client_auth_type", "unknown client auth type \"" + t.client_auth_type + "\"");
      if (tls.Read("min_version", t.min_version) && !OneOf(t.min_version, kTlsVersions))
        tls.Error("min_version", "unknown TLS version \"" + t.min_version + "\" (TLS10..TLS13)");
      if (tls.Read("max_version", t.max_version) && !OneOf(t.max_version, kTlsVersions))
        tls.Error("max_version", "unknown TLS version \"" + t.max_version + "\" (TLS10..TLS13)");
      if (t.client_auth_type != "NoClientCert" && t.client_auth_type != "RequestClientCert" &&
          t.client_ca_file.empty() && tls.valid())
        tls.Error("client_ca_file", "required when client_auth_type verifies certificates");
      // Accepted for compatibility with exporter-toolkit files; OpenSSL defaults apply.
      tls.Get("cipher_suites");
      tls.Get("curve_preferences");
      tls.Get("prefer_server_cipher_suites");
      tls.Finish();
      t.cert_file = ResolveRelative(path, t.cert_file);
      t.key_file = ResolveRelative(path, t.key_file);
      t.client_ca_file = ResolveRelative(path, t.client_ca_file);
      // Loaded here as the server will: a key that is missing or does not
      // match fails `check config`, not only the start.
      if (tls.valid() && local.ok()) {
        if (auto error = CheckTlsServerConfig(t))
          local.Error(top.Get("tls_server_config"), "tls_server_config: " + *error);
      }
      cfg.tls = t;
    }
    if (top.ReadStringMap("basic_auth_users", cfg.basic_auth_users)) {
      for (const auto& [user, hash] : cfg.basic_auth_users) {
        if (!IsBcryptHash(hash)) {
          local.Error(top.Get("basic_auth_users")[user],
                      "basic_auth_users." + user + ": not a bcrypt hash (want $2y$...)");
        }
        if (user.find(':') != std::string::npos)
          local.Error(top.Get("basic_auth_users")[user],
                      "basic_auth_users." + user + ": user names cannot contain ':'");
        if (user.find('\0') != std::string::npos)  // could never log in (see Check)
          local.Error(top.Get("basic_auth_users")[user],
                      "basic_auth_users: user names cannot contain NUL");
      }
    }
    top.Get("http_server_config");  // HTTP/2 and headers: not applicable to this server
    top.Finish();
  }
  diags.Append(local);
  if (!local.ok()) return std::nullopt;
  return cfg;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string> users,
                                       BasicAuthHooks hooks)
    : users_(std::move(users)), hooks_(std::move(hooks)) {
  if (users_.empty()) return;
  highest_cost_ = 4;
  for (const auto& [user, hash] : users_) highest_cost_ = std::max(highest_cost_, CostOf(hash));
  dummy_hash_ = MakeDummyHash(highest_cost_);
  // The first measure of failure_time(); later runs at the highest cost refine it.
  const auto start = hooks_.now();
  (void)hooks_.verify("", dummy_hash_);
  RecordHighestCost(hooks_.now() - start);
}

BasicAuthenticator::Clock::duration BasicAuthenticator::failure_time() const {
  std::lock_guard lock(mu_);
  return *std::max_element(highest_cost_runs_.begin(), highest_cost_runs_.end());
}

void BasicAuthenticator::RecordHighestCost(Clock::duration took) {
  std::lock_guard lock(mu_);
  highest_cost_runs_[next_run_] = took;
  next_run_ = (next_run_ + 1) % highest_cost_runs_.size();
}

bool BasicAuthenticator::Check(const std::string& authorization) {
  // The scheme is case-insensitive (RFC 7617); bound the work on junk.
  static constexpr std::string_view kPrefix = "basic ";
  if (authorization.size() < kPrefix.size() || authorization.size() > 4096) return false;
  for (size_t i = 0; i < kPrefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kPrefix[i]) return false;
  auto decoded = DecodeBase64(authorization.substr(kPrefix.size()));
  if (!decoded) return false;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded->substr(0, colon);
  const std::string password = decoded->substr(colon + 1);

  // crypt(3) stops at NUL, so such credentials fail the way an unknown user does.
  const bool has_nul = decoded->find('\0') != std::string::npos;
  auto it = has_nul ? users_.end() : users_.find(user);
  const bool known = it != users_.end();
  const std::string& hash = known ? it->second : dummy_hash_;
  const std::string cache_key = Sha256Hex(user + '\0' + password + '\0' + hash);
  {
    std::lock_guard lock(mu_);
    if (known && verified_.contains(cache_key)) return true;
  }
  // At most two bcrypts at once: a guessing flood then cannot take every core,
  // and clients with cached credentials never wait here.
  bcrypt_slots_.acquire();
  const auto start = hooks_.now();
  const bool ok = hooks_.verify(password, hash) && known;
  const auto took = hooks_.now() - start;
  bcrypt_slots_.release();
  if (CostOf(hash) == highest_cost_) RecordHighestCost(took);
  if (ok) {
    std::lock_guard lock(mu_);
    if (verified_.size() > 1024) verified_.clear();
    verified_.insert(cache_key);
    return true;
  }
  // Outside the bcrypt slots: waiting costs no CPU and blocks no other check.
  const auto until = start + failure_time();
  if (hooks_.now() < until) hooks_.sleep_until(until);
  return false;
}

}  // namespace virtscale
