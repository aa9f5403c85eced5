#include "collectors/sources/source_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>

#include "common/file_reader.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsValidName(std::string_view s, bool allow_colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = IsAlpha(c) || c == '_' || (allow_colon && c == ':') || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsValidSourceName(std::string_view s) {
  if (s.empty() || s.size() > kMaxSourceName || !(IsAlpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return IsAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '.';
  });
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

// The same check the poll makes, so a FIFO or a missing file fails the load,
// not every poll.
std::optional<std::string> Unreadable(const std::string& path) {
  std::string error;
  if (ReadRegularFile(path, kMaxConfigBytes, error)) return std::nullopt;
  return "cannot read " + path + ": " + error;
}

// Which source types use each type-specific key.
struct KeyUse {
  std::string_view key;
  std::array<bool, 3> used_by;  // prometheus, scrape, file
};
constexpr KeyUse kKeyUse[] = {
    {"url", {true, true, false}},
    {"query", {true, false, false}},
    {"metric", {false, true, false}},
    {"labels", {false, true, false}},
    {"sum", {false, true, false}},
    {"path", {false, false, true}},
    {"basic_auth", {true, true, false}},
    {"bearer_token", {true, true, false}},
    {"bearer_token_file", {true, true, false}},
    {"tls_config", {true, true, false}},
};

void DecodeAuth(MapReader& r, const std::string& base_dir, SourceConfig& cfg, bool& ok) {
  if (r.Has("basic_auth")) {
    MapReader auth(r.Get("basic_auth"), r.PathOf("basic_auth"), r.diags());
    BasicAuth basic;
    ok &= auth.valid();
    if (auth.Require("username"))
      ok &= auth.Read("username", basic.username);
    else
      ok = false;
    auth.Read("password", basic.password);
    if (auth.Read("password_file", basic.password_file)) {
      basic.password_file = Resolve(base_dir, basic.password_file);
      if (auth.Has("password")) {
        auth.Error("password_file", "set password or password_file, not both");
        ok = false;
      } else if (auto error = Unreadable(basic.password_file)) {
        auth.Error("password_file", *error);
        ok = false;
      }
    }
    auth.Finish();
    cfg.basic_auth = std::move(basic);
  }
  if (r.Read("bearer_token", cfg.bearer_token) && cfg.basic_auth) {
    r.Error("bearer_token", "cannot be combined with basic_auth");
    ok = false;
  }
  if (r.Read("bearer_token_file", cfg.bearer_token_file)) {
    cfg.bearer_token_file = Resolve(base_dir, cfg.bearer_token_file);
    if (r.Has("bearer_token")) {
      r.Error("bearer_token_file", "set bearer_token or bearer_token_file, not both");
      ok = false;
    } else if (cfg.basic_auth) {
      r.Error("bearer_token_file", "cannot be combined with basic_auth");
      ok = false;
    } else if (auto error = Unreadable(cfg.bearer_token_file)) {
      r.Error("bearer_token_file", *error);
      ok = false;
    }
  }
  if (r.Has("tls_config")) {
    MapReader tls(r.Get("tls_config"), r.PathOf("tls_config"), r.diags());
    ok &= tls.valid();
    if (tls.Read("ca_file", cfg.tls.ca_file)) {
      cfg.tls.ca_file = Resolve(base_dir, cfg.tls.ca_file);
      if (auto error = Unreadable(cfg.tls.ca_file)) {
        tls.Error("ca_file", *error);
        ok = false;
      }
    }
    tls.Read("insecure_skip_verify", cfg.tls.insecure_skip_verify);
    tls.Finish();
  }
}

std::optional<SourceConfig> DecodeOne(const std::string& name, const YAML::Node& node,
                                      const std::string& base_dir, Diagnostics& diags) {
  MapReader r(node, "sources." + name, diags);
  if (!r.valid()) return std::nullopt;
  if (node.IsNull()) {
    diags.Error(node, "sources." + name + ": expected a mapping with at least `type`");
    return std::nullopt;
  }
  SourceConfig cfg;
  cfg.name = name;
  bool ok = true;

  std::string type;
  if (!r.Require("type") || !r.Read("type", type)) return std::nullopt;
  if (type == "prometheus") {
    cfg.type = SourceType::kPrometheus;
  } else if (type == "scrape") {
    cfg.type = SourceType::kScrape;
  } else if (type == "file") {
    cfg.type = SourceType::kFile;
  } else {
    r.Error("type", "unknown type \"" + type + "\" (want prometheus, scrape or file)");
    return std::nullopt;
  }
  const auto type_index = static_cast<size_t>(cfg.type);
  for (const auto& use : kKeyUse) {
    if (!use.used_by[type_index] && r.Has(use.key)) {
      r.Error(use.key, "not used by type " + type);
      r.Get(use.key);  // reported here, not again as unknown
      ok = false;
    }
  }

  if (cfg.type != SourceType::kFile) {
    std::string url;
    if (r.Require("url") && r.Read("url", url)) {
      std::string why;
      auto parsed = ParseHttpUrl(url, why);
      if (!parsed) {
        r.Error("url", "invalid URL \"" + url + "\": " + why);
        ok = false;
      } else if (cfg.type == SourceType::kPrometheus &&
                 parsed->path.find('?') != std::string::npos) {
        r.Error("url", "must not carry a query string (the server's base URL is expected)");
        ok = false;
      } else {
        cfg.url = *parsed;
      }
    } else {
      ok = false;
    }
    DecodeAuth(r, base_dir, cfg, ok);
  }

  switch (cfg.type) {
    case SourceType::kPrometheus:
      if (r.Require("query") && r.Read("query", cfg.query)) {
        if (cfg.query.find_first_not_of(" \t\n") == std::string::npos) {
          r.Error("query", "must not be empty");
          ok = false;
        }
      } else {
        ok = false;
      }
      break;
    case SourceType::kScrape:
      if (r.Require("metric") && r.Read("metric", cfg.metric)) {
        if (!IsValidName(cfg.metric, /*allow_colon=*/true)) {
          r.Error("metric", "invalid metric name \"" + cfg.metric + "\"");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (r.Has("labels") && !r.ReadStringMap("labels", cfg.labels)) ok = false;
      for (const auto& [label, value] : cfg.labels) {
        if (!IsValidName(label, /*allow_colon=*/false) || label == "__name__") {
          r.Error("labels", "invalid label name \"" + label + "\"");
          ok = false;
        }
      }
      if (r.Has("sum") && !r.Read("sum", cfg.sum)) ok = false;
      break;
    case SourceType::kFile:
      if (r.Require("path") && r.Read("path", cfg.path) && !cfg.path.empty()) {
        cfg.path = Resolve(base_dir, cfg.path);
      } else {
        if (r.Has("path")) r.Error("path", "must not be empty");
        ok = false;
      }
      break;
  }

  const bool has_interval = r.Has("interval");
  const bool has_timeout = r.Has("timeout");
  const bool has_stale = r.Has("stale_after");
  if (has_interval && !r.ReadDuration("interval", cfg.interval)) ok = false;
  if (has_timeout && !r.ReadDuration("timeout", cfg.timeout)) ok = false;
  if (has_stale && !r.ReadDuration("stale_after", cfg.stale_after)) ok = false;
  if (cfg.interval <= Duration::zero()) {
    r.Error("interval", "must be greater than 0");
    return std::nullopt;
  }
  if (!has_timeout) cfg.timeout = std::min<Duration>(std::chrono::seconds(5), cfg.interval);
  if (!has_stale) cfg.stale_after = 3 * cfg.interval;
  if (cfg.timeout <= Duration::zero()) {
    r.Error("timeout", "must be greater than 0");
    ok = false;
  } else if (cfg.timeout > cfg.interval) {
    r.Error("timeout", "must not exceed interval (" + FormatDuration(cfg.interval) + ")");
    ok = false;
  }
  if (cfg.stale_after < cfg.interval) {
    r.Error("stale_after", "must be at least interval (" + FormatDuration(cfg.interval) + ")");
    ok = false;
  }
  r.Finish();
  if (!ok) return std::nullopt;
  return cfg;
}

}  // namespace

std::string_view SourceTypeName(SourceType type) {
  switch (type) {
    case SourceType::kPrometheus:
      return "prometheus";
    case SourceType::kScrape:
      return "scrape";
    case SourceType::kFile:
      return "file";
  }
  return "unknown";
}

std::map<std::string, SourceConfig> DecodeSources(const YAML::Node& sources_node,
                                                  const std::string& base_dir, Diagnostics& diags) {
  std::map<std::string, SourceConfig> out;
  if (!sources_node.IsDefined() || sources_node.IsNull()) return out;
  if (!sources_node.IsMap()) {
    diags.Error(sources_node, "sources: expected a mapping of source names to sources");
    return out;
  }
  if (sources_node.size() > kMaxSources) {
    diags.Error(sources_node, "sources: " + std::to_string(sources_node.size()) +
                                  " sources; at most " + std::to_string(kMaxSources) +
                                  " are supported");
    return out;
  }
  ReportDuplicateKeys(sources_node, "sources", diags);
  for (const auto& entry : sources_node) {
    if (!entry.first.IsScalar()) {
      diags.Error(entry.first, "sources: source names must be strings");
      continue;
    }
    const std::string name = entry.first.Scalar();
    if (!IsValidSourceName(name)) {
      diags.Error(entry.first, "sources." + BoundedUtf8(name, 80) +
                                   ": invalid source name (letters, digits, _ . -; starting "
                                   "with a letter or _; at most " +
                                   std::to_string(kMaxSourceName) + " characters)");
      continue;
    }
    if (auto cfg = DecodeOne(name, entry.second, base_dir, diags)) out.emplace(name, *cfg);
  }
  return out;
}

}  // namespace virtscale
