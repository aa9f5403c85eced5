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
#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <set>
#include <string>
#include <thread>

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

// True when `password` matches the crypt(3) hash (bcrypt "$2y$..." etc.).
bool VerifyCryptHash(const std::string& password, const std::string& hash);

// What BasicAuthenticator runs on. Tests replace these to see how long a check
// would wait, without waiting.
struct BasicAuthHooks {
  using Clock = std::chrono::steady_clock;
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  std::function<void(Clock::time_point)> sleep_until = [](Clock::time_point t) {
    std::this_thread::sleep_until(t);
  };
  std::function<bool(const std::string& password, const std::string& hash)> verify =
      VerifyCryptHash;
};

// Verifies basic-auth credentials against bcrypt hashes via libcrypt; hashes
// compare in constant time. At most two bcrypt computations run at once.
//
// Every failure takes the same time, so timing reveals neither user names nor
// the cost of a user's hash: an unknown user, or a user or password containing
// NUL (crypt(3) would stop there and accept "pw\0junk" for "pw"), is checked
// against a dummy hash at the highest configured cost; then every failed check
// waits until failure_time() has passed since its bcrypt began. failure_time()
// is the longest of the last few bcrypt runs at the highest cost (one is timed
// at construction), so it follows the machine's load and a spike ages out.
//
// Successful checks are cached (by a SHA-256 of user, password and hash) so a
// scrape every few seconds does not pay bcrypt each time.
//
//   BasicAuthenticator auth(web.basic_auth_users);
//   if (auth.enabled() && !auth.Check(req.get_header_value("Authorization"))) ...401
class BasicAuthenticator {
 public:
  using Clock = BasicAuthHooks::Clock;
  explicit BasicAuthenticator(std::map<std::string, std::string> users, BasicAuthHooks hooks = {});
  bool enabled() const { return !users_.empty(); }
  // `authorization` is the raw Authorization header value.
  bool Check(const std::string& authorization);
  // How long every failed check lasts at least (from the start of its bcrypt).
  Clock::duration failure_time() const;

 private:
  void RecordHighestCost(Clock::duration took);

  std::map<std::string, std::string> users_;
  BasicAuthHooks hooks_;
  std::string dummy_hash_;  // checked for unknown users
  int highest_cost_ = 0;
  std::counting_semaphore<2> bcrypt_slots_{2};
  mutable std::mutex mu_;
  std::set<std::string> verified_;                      // cache keys of verified credentials
  std::array<Clock::duration, 8> highest_cost_runs_{};  // ring of recent durations
  size_t next_run_ = 0;
};

}  // namespace virtscale
