#pragma once
// The `sources:` section of virtscale.yml: named external metrics (queue
// depth, ...) read from a Prometheus server, any exposition endpoint, or a file.
//
//   sources:
//     jobs:
//       type: prometheus
//       url: http://127.0.0.1:9090
//       query: sum(rabbitmq_queue_messages_ready{queue="jobs"})
//       interval: 15s            # default 15s
//       timeout: 5s              # default min(5s, interval)
//       stale_after: 45s         # default 3 x interval
//       basic_auth: {username: u, password_file: secret}
//       tls_config: {ca_file: ca.pem, insecure_skip_verify: false}
//
//   Diagnostics diags("virtscale.yml");
//   auto sources = DecodeSources(root["sources"], "/etc/virtscale", diags);
//   // problems read "virtscale.yml:12: sources.jobs.interval: invalid duration ..."
//
// Relative paths (`path`, `password_file`, `bearer_token_file`, `ca_file`)
// resolve against `base_dir`, the directory of the config file.
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "common/http_url.h"
#include "common/yaml_reader.h"

namespace virtscale {

enum class SourceType { kPrometheus, kScrape, kFile };
std::string_view SourceTypeName(SourceType type);

struct BasicAuth {
  std::string username;
  std::string password;       // inline, or
  std::string password_file;  // absolute after decoding; read at every request
  bool operator==(const BasicAuth&) const = default;
};

struct TlsConfig {
  std::string ca_file;  // absolute after decoding; empty: system CAs
  bool insecure_skip_verify = false;
  bool operator==(const TlsConfig&) const = default;
};

struct SourceConfig {
  std::string name;
  SourceType type = SourceType::kFile;
  HttpUrl url;                                // prometheus, scrape
  std::string query;                          // prometheus: PromQL instant query
  std::string metric;                         // scrape: metric (sample) name
  std::map<std::string, std::string> labels;  // scrape: exact label matchers
  bool sum = false;                           // scrape: sum all matching series
  std::string path;                           // file: absolute after decoding
  Duration interval = std::chrono::seconds(15);
  Duration timeout = std::chrono::seconds(5);
  Duration stale_after = std::chrono::seconds(45);
  std::optional<BasicAuth> basic_auth;
  std::string bearer_token;
  std::string bearer_token_file;  // absolute after decoding
  TlsConfig tls;
  bool operator==(const SourceConfig&) const = default;  // lets a reload keep unchanged sources
};

// Decodes the `sources:` mapping (null/absent: no sources). Every problem is
// reported to `diags` as "FILE:LINE: sources.NAME.key: message"; sources with
// problems are left out of the result.
// Each source is polled by its own request every interval; names appear in
// every series and decision (docs/configuration.md "Limits").
inline constexpr size_t kMaxSources = 256;
inline constexpr size_t kMaxSourceName = 64;

std::map<std::string, SourceConfig> DecodeSources(const YAML::Node& sources_node,
                                                  const std::string& base_dir, Diagnostics& diags);

}  // namespace virtscale
