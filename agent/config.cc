#include "agent/config.h"

#include <filesystem>
#include <set>

#include "common/file_reader.h"

namespace virtscale {
namespace {

void DecodeLibvirt(MapReader& r, LibvirtSettings& out) {
  r.Read("uri", out.uri);
  r.ReadDuration("sample_interval", out.sample_interval);
  r.ReadDuration("call_timeout", out.call_timeout);
  if (r.Read("workers", out.workers) && (out.workers < 0 || out.workers > 64))
    r.Error("workers", "must be between 0 (auto) and 64");
  if (out.sample_interval < std::chrono::milliseconds(100))
    r.Error("sample_interval", "must be at least 100ms");
  if (out.call_timeout <= Duration::zero()) r.Error("call_timeout", "must be positive");
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
    DecodeLibvirt(libvirt, cfg.libvirt);
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
    top.Finish();

    std::set<std::string> source_names;
    for (const auto& [name, _] : cfg.sources) source_names.insert(name);
    cfg.rules = autoscale::LoadRuleFiles(cfg.rule_files, base_dir, source_names,
                                         cfg.libvirt.sample_interval, local, rule_file_lines);
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
