#include "agent/config.h"

#include <fmt/format.h>

#include <filesystem>
#include <regex>
#include <set>

#include "common/file_reader.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

// `stats: [state, cpu, ...]`: each name once, each known; an error names the
// element's line.
void DecodeStatGroups(const YAML::Node& list, MapReader& r, Diagnostics& diags,
                      LibvirtSettings& out) {
  if (!list.IsSequence()) {
    r.Error("stats", "expected a list of stat groups");
    return;
  }
  StatGroups groups = VIR_DOMAIN_STATS_STATE;
  bool ok = true;
  for (const YAML::Node& item : list) {
    const std::string name = item.IsScalar() ? item.Scalar() : "";
    StatGroups bit = 0;
    if (!item.IsScalar() || !ParseStatGroups({name}, bit)) {
      diags.Error(item, fmt::format("libvirt.stats: unknown stat group \"{}\" (known: {})",
                                    BoundedUtf8(name, 64), fmt::join(StatGroupNames(~0u), ", ")));
      ok = false;
    } else if (groups & bit & ~VIR_DOMAIN_STATS_STATE) {
      diags.Error(item, "libvirt.stats: \"" + name + "\" is listed twice");
      ok = false;
    }
    groups |= bit;
  }
  if (ok) out.stat_groups = groups;
}

// `metadata_labels: {LABEL: {namespace: URI, xpath: EXPR}, ...}`; each error
// names the label's line.
void DecodeMetadataLabels(const YAML::Node& map, MapReader& r, Diagnostics& diags,
                          LibvirtSettings& out) {
  if (!map.IsMap()) {
    r.Error("metadata_labels", "expected a map of label name to {namespace, xpath}");
    return;
  }
  auto labels = std::make_shared<MetadataLabels>();
  bool ok = true;
  for (const auto& item : map) {
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
    const std::string path = "libvirt.metadata_labels." + BoundedUtf8(name, 64);
    MapReader lr(item.second, path, diags);
    if (!lr.valid()) {
      ok = false;
      continue;
    }
    std::string ns, xpath, error;
    const bool has_ns = lr.Require("namespace") && lr.Read("namespace", ns);
    const bool has_xpath = lr.Require("xpath") && lr.Read("xpath", xpath);
    const bool complete = has_ns && has_xpath;
    lr.Finish();
    if (!complete) {
      ok = false;
    } else if (!labels->Add(name, ns, xpath, error)) {
      diags.Error(item.first, path + ": " + error);
      ok = false;
    }
  }
  if (ok) out.metadata_labels = std::move(labels);
}

void DecodeLibvirt(MapReader& r, Diagnostics& diags, LibvirtSettings& out) {
  r.Read("uri", out.uri);
  r.ReadDuration("sample_interval", out.sample_interval);
  r.ReadDuration("call_timeout", out.call_timeout);
  if (r.Read("workers", out.workers) && (out.workers < 0 || out.workers > 64))
    r.Error("workers", "must be between 0 (auto) and 64");
  if (out.sample_interval < std::chrono::milliseconds(100))
    r.Error("sample_interval", "must be at least 100ms");
  if (out.call_timeout <= Duration::zero()) r.Error("call_timeout", "must be positive");
  if (r.Has("stats")) DecodeStatGroups(r.Get("stats"), r, diags, out);
  if (r.Has("metadata_labels")) DecodeMetadataLabels(r.Get("metadata_labels"), r, diags, out);
  r.Finish();
}

void DecodeWeb(MapReader& r, const std::string& file, WebSettings& out) {
  if (r.Read("listen_address", out.listen_address) && !ParseListenAddress(out.listen_address))
    r.Error("listen_address", "invalid address \"" + out.listen_address +
                                  "\" (want host:port, :port or [v6]:port, port 0 to 65535)");
  if (r.Read("config_file", out.config_file))
    out.config_file = ResolveRelative(file, out.config_file);
  HttpServerLimits& limits = out.limits;
  auto timeout = [&r](std::string_view key, std::chrono::milliseconds& value, Duration low,
                      Duration high) {
    Duration d = value;
    if (!r.ReadDuration(key, d)) return;
    if (d < low || d > high) {
      r.Error(key, "must be between " + FormatDuration(low) + " and " + FormatDuration(high));
      return;
    }
    value = std::chrono::duration_cast<std::chrono::milliseconds>(d);
  };
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  timeout("read_timeout", limits.request_deadline, milliseconds(100), minutes(10));
  timeout("idle_timeout", limits.idle_timeout, milliseconds(100), hours(1));
  timeout("write_timeout", limits.write_timeout, milliseconds(100), minutes(10));
  auto count = [&r](std::string_view key, size_t& value, int64_t low, int64_t high) {
    int64_t n = static_cast<int64_t>(value);
    if (!r.Read(key, n)) return;
    if (n < low || n > high) {
      r.Error(key, "must be between " + std::to_string(low) + " and " + std::to_string(high));
      return;
    }
    value = static_cast<size_t>(n);
  };
  count("max_connections", limits.max_connections, 1, 65536);
  count("max_header_bytes", limits.header_limit, 1024, 1 << 20);
  count("max_body_bytes", limits.body_limit, 1024, 16 << 20);
  r.Finish();
}

// `hosts: {NAME: URI, ...}`: names become label values and member placement
// keys, so they are short identifiers; one URI under two names would count a
// host's members twice.
void DecodeHosts(MapReader& top, Diagnostics& diags, std::map<std::string, std::string>& out) {
  const YAML::Node map = top.Get("hosts");
  if (!map.IsDefined() || map.IsNull()) return;
  if (!map.IsMap()) {
    top.Error("hosts", "expected a map of host name to libvirt URI");
    return;
  }
  ReportDuplicateKeys(map, "hosts", diags);
  static const std::regex kName("[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}");
  static const std::regex kUri("[A-Za-z][A-Za-z0-9+.-]*:.*");
  std::map<std::string, std::string> by_uri;  // uri -> first name
  for (const auto& item : map) {
    const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
    const std::string path = "hosts." + BoundedUtf8(name, 64);
    if (!IsValidUtf8(name) || !std::regex_match(name, kName)) {
      diags.Error(item.first, path +
                                  ": a host name is 1 to 63 letters, digits, '_', '.' or '-', "
                                  "not starting with '.' or '-'");
      continue;
    }
    if (!item.second.IsScalar() || item.second.Scalar().empty()) {
      diags.Error(item.second, path + ": expected a libvirt URI such as qemu+tcp://HOST/system");
      continue;
    }
    const std::string uri = item.second.Scalar();
    if (uri.size() > 1024 || !IsValidUtf8(uri) || !std::regex_match(uri, kUri)) {
      diags.Error(item.second,
                  path + ": \"" + BoundedUtf8(uri, 64) +
                      "\" is not a libvirt URI (want DRIVER[+TRANSPORT]://[HOST]/PATH)");
      continue;
    }
    auto [first, fresh] = by_uri.emplace(uri, name);
    if (!fresh) {
      diags.Error(item.second,
                  path + ": same URI as hosts." + first->second +
                      " (one hypervisor under two names would count its members twice)");
      continue;
    }
    out[name] = uri;
  }
}

// A rule reading cpu or memory needs the stat group that carries it.
void CheckRuleStatGroups(const autoscale::RuleSet& rules, StatGroups groups,
                         const std::string& config_file, int stats_line, Diagnostics& diags) {
  using autoscale::MetricKind;
  auto need = [&](MetricKind kind, const std::string& file, int line, const std::string& what) {
    const bool cpu = kind == MetricKind::kCpu;
    if (kind == MetricKind::kSource) return;
    if (groups & (cpu ? VIR_DOMAIN_STATS_CPU_TOTAL : VIR_DOMAIN_STATS_BALLOON)) return;
    diags.Add(file, line,
              fmt::format("{} needs the \"{}\" stat group, which libvirt.stats ({}:{}) leaves out",
                          what, cpu ? "cpu" : "balloon", config_file, stats_line));
  };
  for (const autoscale::GroupRule& g : rules.groups) {
    for (const autoscale::ScalePolicy* p : {&g.scale_up, &g.scale_down})
      for (const autoscale::Condition& c : p->when)
        need(c.metric.kind, g.file, c.line, "condition " + c.Describe());
    if (g.target) need(g.target->metric.kind, g.file, g.line, "target " + g.target->Describe());
    if (g.down_order == autoscale::DownOrder::kLeastLoaded)
      need(MetricKind::kCpu, g.file, g.line, "scale_down.order least_loaded");
  }
}

// A forecast reads its source's history as a range query, which only a
// Prometheus server answers.
void CheckForecastSources(const autoscale::RuleSet& rules,
                          const std::map<std::string, SourceConfig>& sources, Diagnostics& diags) {
  std::map<std::string, size_t> index_in_file;  // the groups[i] of messages
  for (const autoscale::GroupRule& g : rules.groups) {
    const size_t index = index_in_file[g.file]++;
    if (!g.forecast) continue;
    auto found = sources.find(g.forecast->source);
    if (found == sources.end() || found->second.type == SourceType::kPrometheus) continue;
    diags.Add(g.file, g.forecast->line,
              fmt::format("groups[{}].forecast.source: source \"{}\" is of type {}; a forecast "
                          "reads its history as a range query and needs type prometheus",
                          index, g.forecast->source, SourceTypeName(found->second.type)));
  }
}

// `leader_election: {etcd: {endpoints, key, lease_ttl}}`: several controllers,
// one acts. A problem names the key's line.
void DecodeLeaderElection(MapReader& top, Diagnostics& diags,
                          std::optional<autoscale::LeaderElectionConfig>& out) {
  if (!top.Has("leader_election")) return;
  MapReader election(top.Get("leader_election"), "leader_election", diags);
  if (!election.valid()) return;
  const bool has_etcd = election.Require("etcd");
  YAML::Node etcd_node = has_etcd ? election.Get("etcd") : YAML::Node();
  election.Finish();
  if (!has_etcd) return;
  const auto errors_before = diags.errors();
  MapReader etcd(etcd_node, "leader_election.etcd", diags);
  if (!etcd.valid()) return;
  autoscale::LeaderElectionConfig config;
  const bool complete = etcd.Require("endpoints");
  etcd.ReadStringList("endpoints", config.endpoints);
  etcd.Read("key", config.key);
  etcd.ReadDuration("lease_ttl", config.lease_ttl);
  etcd.Finish();
  if (!complete || diags.errors() != errors_before) return;
  if (auto problem = autoscale::ValidateLeaderElectionConfig(config)) {
    // The problem starts with the key it is about.
    const std::string key = problem->substr(0, problem->find_first_of(" ["));
    const YAML::Node at = etcd.Has(key) ? etcd.Get(key) : etcd.node();
    diags.Error(at, "leader_election.etcd." + *problem);
    return;
  }
  out = std::move(config);
}

}  // namespace

AgentConfig DefaultAgentConfig() { return AgentConfig{}; }

std::string ResolveRelative(const std::string& file, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute() || file.empty()) return path;
  return (fs::absolute(fs::path(file)).parent_path() / path).lexically_normal().string();
}

std::optional<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& path,
                                            Diagnostics& diags) {
  Diagnostics local(path);
  auto root = LoadYamlString(text, local);
  AgentConfig cfg = DefaultAgentConfig();
  cfg.file = path;
  if (root) {
    MapReader top(*root, "", local);
    MapReader libvirt(top.Get("libvirt"), "libvirt", local);
    DecodeLibvirt(libvirt, local, cfg.libvirt);
    MapReader web(top.Get("web"), "web", local);
    DecodeWeb(web, path, cfg.web);
    top.ReadStringList("rule_files", cfg.rule_files);
    std::vector<int> rule_file_lines;
    if (top.Has("rule_files") && top.Get("rule_files").IsSequence())
      for (const YAML::Node& glob : top.Get("rule_files")) rule_file_lines.push_back(LineOf(glob));
    const std::string base_dir = std::filesystem::absolute(path).parent_path().string();
    if (top.Has("sources")) cfg.sources = DecodeSources(top.Get("sources"), base_dir, local);
    cfg.notifications =
        autoscale::DecodeNotifications(top.Get("notifications"), "notifications", local);
    DecodeHosts(top, local, cfg.hosts);
    DecodeLeaderElection(top, local, cfg.leader_election);
    top.Finish();

    std::set<std::string> source_names;
    for (const auto& [name, _] : cfg.sources) source_names.insert(name);
    cfg.rules = autoscale::LoadRuleFiles(cfg.rule_files, base_dir, source_names,
                                         cfg.libvirt.sample_interval, local, rule_file_lines);
    CheckForecastSources(cfg.rules, cfg.sources, local);
    if (cfg.libvirt.stat_groups != kCoreStatGroups)
      CheckRuleStatGroups(cfg.rules, cfg.libvirt.stat_groups, path, LineOf(libvirt.Get("stats")),
                          local);
  }
  diags.Append(local);
  if (!local.ok()) return std::nullopt;
  return cfg;
}

std::optional<AgentConfig> LoadAgentConfig(const std::string& path, Diagnostics& diags) {
  std::string error;
  auto text = ReadRegularFile(path, kMaxConfigBytes, error);
  if (!text) {
    diags.Add(path, 0, "cannot read: " + error);
    return std::nullopt;
  }
  // Decoders report what they find; this catches what the libraries they call
  // can still throw (yaml-cpp, allocation), so no file can crash a reload.
  try {
    return ParseAgentConfig(*text, path, diags);
  } catch (const std::exception& e) {
    diags.Add(path, 0, std::string("cannot load: ") + e.what());
    return std::nullopt;
  }
}

}  // namespace virtscale
