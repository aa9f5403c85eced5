#pragma once
// Strict YAML decoding with FILE:LINE diagnostics, shared by the agent config,
// rule files and sources. Every problem is collected (not thrown) so `check
// config` can print them all at once.
//
//   Diagnostics diags;
//   auto root = LoadYamlFile("virtscale.yml", diags);
//   MapReader libvirt(root["libvirt"], "libvirt", diags);
//   libvirt.ReadDuration("sample_interval", cfg.sample_interval);
//   libvirt.Finish();   // reports keys nobody read as "unknown key"
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"

namespace virtscale {

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  std::string message;
  bool warning = false;          // valid, but probably not what was meant
  std::string ToString() const;  // "FILE:LINE: message" or "FILE:LINE: warning: message"
};

class Diagnostics {
 public:
  // `file` is the default file name for Error(node, ...).
  explicit Diagnostics(std::string file = "") : file_(std::move(file)) {}

  void Add(std::string file, int line, std::string message, bool warning = false);
  // Reports at the node's line in the current file.
  void Error(const YAML::Node& at, std::string message);
  // A config that loads but cannot do what it seems to (`check config --strict` fails).
  void Warn(const YAML::Node& at, std::string message);

  const std::string& file() const { return file_; }
  void set_file(std::string file) { file_ = std::move(file); }

  // No errors; warnings do not stop a load.
  bool ok() const { return errors() == 0; }
  size_t errors() const { return list_.size() - warnings(); }
  size_t warnings() const;
  const std::vector<Diagnostic>& list() const { return list_; }
  std::string ToString() const;  // one diagnostic per line
  void Append(const Diagnostics& other);

 private:
  std::string file_;
  std::vector<Diagnostic> list_;
};

// 1-based line of a node, 0 for nodes that carry no position.
int LineOf(const YAML::Node& node);

// Parses a file or string; a syntax error is reported at its line and yields nullopt.
std::optional<YAML::Node> LoadYamlFile(const std::string& path, Diagnostics& diags);
std::optional<YAML::Node> LoadYamlString(const std::string& text, Diagnostics& diags);

// Reports every key of `map` that repeats an earlier one ("PATH.KEY: duplicate
// key (first at line N)"). MapReader does it for the maps it reads; decoders
// that iterate a map of names (hosts, sources) call it themselves.
void ReportDuplicateKeys(const YAML::Node& map, const std::string& path, Diagnostics& diags);

// Decodes one YAML mapping. Keys are looked up by name; Finish() reports every key
// that was never read, so typos never pass silently. A null node is an empty map.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, Diagnostics& diags);
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool valid() const { return valid_; }
  bool Has(std::string_view key) const;
  // The raw node (undefined when absent); marks the key as known.
  YAML::Node Get(std::string_view key);
  // Dotted path of a key for messages: "libvirt.sample_interval".
  std::string PathOf(std::string_view key) const;

  // Each returns false (and leaves `out` unchanged) when absent or invalid;
  // invalid values are reported.
  bool Read(std::string_view key, std::string& out);
  bool Read(std::string_view key, bool& out);
  bool Read(std::string_view key, int64_t& out);
  bool Read(std::string_view key, double& out);
  bool ReadDuration(std::string_view key, Duration& out);
  bool ReadStringList(std::string_view key, std::vector<std::string>& out);
  bool ReadStringMap(std::string_view key, std::map<std::string, std::string>& out);
  // Reports a missing mandatory key at the map's own line.
  bool Require(std::string_view key);

  void Error(std::string_view key, const std::string& message);
  void Finish();

  const YAML::Node& node() const { return node_; }
  Diagnostics& diags() { return diags_; }

  // Called with (map path, key) for every key a decoder looks up; the test
  // that keeps docs/configuration.md complete lists the keys with it. Not
  // thread-safe: set it only while nothing else decodes.
  using KeyObserver = void (*)(std::string_view path, std::string_view key);
  static void SetKeyObserver(KeyObserver observer);

 private:
  void Mark(std::string_view key);  // known key: not reported by Finish
  template <typename T>
  bool ReadScalar(std::string_view key, T& out, const char* type_name);

  YAML::Node node_;
  std::string path_;
  Diagnostics& diags_;
  bool valid_ = true;
  bool finished_ = false;
  std::set<std::string, std::less<>> read_;
};

}  // namespace virtscale
