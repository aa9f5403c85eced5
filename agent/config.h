#pragma once
// virtscale.yml: the agent's whole configuration, decoded into typed structs with
// defaults. Decoding collects every problem as FILE:LINE diagnostics; a config
// with any diagnostic is never applied (at start: exit 1; on reload: the running
// config is kept).
//
//   Diagnostics diags;
//   std::optional<AgentConfig> cfg = LoadAgentConfig("/etc/virtscale/virtscale.yml", diags);
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/http_server.h"
#include "autoscale/leader_election.h"
#include "autoscale/rule_loader.h"
#include "autoscale/rules.h"
#include "collectors/domain_stats_parser.h"
#include "collectors/metadata_labels.h"
#include "collectors/sources/source_config.h"
#include "common/duration.h"
#include "common/yaml_reader.h"

namespace virtscale {

struct LibvirtSettings {
  std::string uri = "qemu:///system";
  Duration sample_interval = std::chrono::seconds(5);
  Duration call_timeout = std::chrono::seconds(10);
  int64_t workers = 0;  // 0: one shard per 4 domains, 1 to 4
  // `stats`: the groups the bulk call asks for; state is always among them.
  StatGroups stat_groups = kCoreStatGroups;
  // `metadata_labels`: labels of libvirt_domain_metadata_info; null when unset.
  std::shared_ptr<const MetadataLabels> metadata_labels = nullptr;
};

struct WebSettings {
  std::string listen_address = ":9177";
  std::string config_file;  // exporter-toolkit web config; empty: plain HTTP, no auth
  // read_timeout, idle_timeout, write_timeout, max_connections,
  // max_header_bytes, max_body_bytes; read at start only.
  HttpServerLimits limits;
};

struct AgentConfig {
  std::string file;  // where it was loaded from; empty for built-in defaults
  LibvirtSettings libvirt;
  WebSettings web;
  std::vector<std::string> rule_files;
  std::map<std::string, SourceConfig> sources;
  autoscale::RuleSet rules;
  std::vector<autoscale::NotificationTarget> notifications;  // top level; groups have their own
  // `hosts:` name -> libvirt URI of the fleet's hypervisors; empty: one host only.
  std::map<std::string, std::string> hosts;
  // `leader_election:`; unset: this agent always acts.
  std::optional<autoscale::LeaderElectionConfig> leader_election;
};

// The built-in defaults, used when no --config.file is given.
AgentConfig DefaultAgentConfig();

// Loads and validates `path` plus every rule file and template it names.
std::optional<AgentConfig> LoadAgentConfig(const std::string& path, Diagnostics& diags);
// Same from text; `path` names the file in messages and anchors relative paths.
std::optional<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& path,
                                            Diagnostics& diags);

// Resolves `path` against the directory of `file`, as Prometheus does.
std::string ResolveRelative(const std::string& file, const std::string& path);

}  // namespace virtscale
