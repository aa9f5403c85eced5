#pragma once
// The web config file of the Prometheus exporter-toolkit: TLS (optionally mutual)
// and basic auth with bcrypt hashes. Same keys as node_exporter's, so operators
// reuse their files:
//
//   tls_server_config:
//     cert_file: server.crt
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert
//     client_ca_file: ca.crt
//     min_version: TLS12
//   basic_auth_users:
//     prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <set>
#include <string>

#include "common/yaml_reader.h"

namespace virtscale {

struct TlsServerConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  // NoClientCert | RequestClientCert | RequireAnyClientCert |
  // VerifyClientCertIfGiven | RequireAndVerifyClientCert
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS10 | TLS11 | TLS12 | TLS13
  std::string max_version;            // empty: newest
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
};

// Loads and validates; relative paths resolve against the file's directory.
std::optional<WebConfig> LoadWebConfig(const std::string& path, Diagnostics& diags);

// Verifies basic-auth credentials against bcrypt hashes via libcrypt. Unknown
// users cost one bcrypt at the highest configured cost, like known ones, so
// timing does not reveal user names; hashes compare in constant time. At most
// two bcrypt computations run at once.
// Successful checks are cached (by a SHA-256 of user, password and hash) so a
// scrape every few seconds does not pay bcrypt each time.
class BasicAuthenticator {
 public:
  explicit BasicAuthenticator(std::map<std::string, std::string> users);
  bool enabled() const { return !users_.empty(); }
  // `authorization` is the raw Authorization header value.
  bool Check(const std::string& authorization);

 private:
  std::map<std::string, std::string> users_;
  std::string dummy_hash_;  // checked for unknown users
  std::counting_semaphore<2> bcrypt_slots_{2};
  std::mutex mu_;
  std::set<std::string> verified_;  // cache keys of verified credentials
};

// True when `password` matches the crypt(3) hash (bcrypt "$2y$..." etc.).
bool VerifyCryptHash(const std::string& password, const std::string& hash);

}  // namespace virtscale
