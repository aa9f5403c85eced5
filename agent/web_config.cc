#include "agent/web_config.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <memory>

#include "agent/config.h"

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

// A bcrypt hash of a random password; checked for unknown users to keep timing flat.
constexpr const char* kDummyHash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
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
      cfg.tls = t;
    }
    if (top.ReadStringMap("basic_auth_users", cfg.basic_auth_users)) {
      for (const auto& [user, hash] : cfg.basic_auth_users) {
        if (hash.rfind("$2", 0) != 0) {
          local.Error(top.Get("basic_auth_users")[user],
                      "basic_auth_users." + user + ": not a bcrypt hash (want $2y$...)");
        }
      }
    }
    top.Get("http_server_config");  // HTTP/2 and headers: not applicable to this server
    top.Finish();
  }
  diags.Append(local);
  if (!local.ok()) return std::nullopt;
  return cfg;
}

BasicAuthenticator::BasicAuthenticator(std::map<std::string, std::string> users)
    : users_(std::move(users)) {}

bool BasicAuthenticator::Check(const std::string& authorization) {
  static constexpr std::string_view kPrefix = "Basic ";
  if (authorization.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  auto decoded = DecodeBase64(authorization.substr(kPrefix.size()));
  if (!decoded) return false;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded->substr(0, colon);
  const std::string password = decoded->substr(colon + 1);

  auto it = users_.find(user);
  const std::string& hash = it == users_.end() ? std::string(kDummyHash) : it->second;
  const std::string cache_key = Sha256Hex(user + '\0' + password + '\0' + hash);
  {
    std::lock_guard lock(mu_);
    if (it != users_.end() && verified_.contains(cache_key)) return true;
  }
  bool ok = VerifyCryptHash(password, hash) && it != users_.end();
  if (ok) {
    std::lock_guard lock(mu_);
    if (verified_.size() > 1024) verified_.clear();
    verified_.insert(cache_key);
  }
  return ok;
}

}  // namespace virtscale
