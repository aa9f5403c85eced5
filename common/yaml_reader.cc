#include "common/yaml_reader.h"

#include <algorithm>
#include <cmath>

#include "common/file_reader.h"
#include "common/utf8.h"

namespace virtscale {

namespace {

// Levenshtein distance, for "did you mean"; keys are short.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The known key closest to `key`, when close enough to be a typo.
template <typename Keys>
std::string NearestKey(std::string_view key, const Keys& known) {
  if (key.size() > 64) return "";
  std::string best;
  size_t best_distance = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& candidate : known) {
    const size_t d = EditDistance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

// 1-based line of the first line whose indentation holds a tab, or 0.
int FirstTabIndentedLine(std::string_view text) {
  int line = 1;
  bool indent = true;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      indent = true;
    } else if (indent && c == '\t') {
      return line;
    } else if (c != ' ') {
      indent = false;
    }
  }
  return 0;
}

}  // namespace

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += warning ? ": warning: " : ": ";
  out += message;
  return out;
}

void Diagnostics::Add(std::string file, int line, std::string message, bool warning) {
  // Messages quote values from the file, which can be megabytes of any bytes.
  list_.push_back({ValidUtf8(file), line, BoundedUtf8(message, 1024), warning});
}

void Diagnostics::Warn(const YAML::Node& at, std::string message) {
  Add(file_, LineOf(at), std::move(message), true);
}

size_t Diagnostics::warnings() const {
  return static_cast<size_t>(
      std::count_if(list_.begin(), list_.end(), [](const Diagnostic& d) { return d.warning; }));
}

void Diagnostics::Error(const YAML::Node& at, std::string message) {
  Add(file_, LineOf(at), std::move(message));
}

std::string Diagnostics::ToString() const {
  std::string out;
  for (const auto& d : list_) out += d.ToString() + "\n";
  return out;
}

void Diagnostics::Append(const Diagnostics& other) {
  list_.insert(list_.end(), other.list_.begin(), other.list_.end());
}

int LineOf(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

std::optional<YAML::Node> LoadYamlString(const std::string& text, Diagnostics& diags) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    std::string message = "YAML syntax error: " + e.msg;
    // yaml-cpp reports a tab in the indentation as a missing end of map.
    if (const int tab_line = FirstTabIndentedLine(text);
        tab_line > 0 && (line == 0 || tab_line <= line + 1))
      message += " (line " + std::to_string(tab_line) +
                 " is indented with a tab; YAML indents with spaces only)";
    diags.Add(diags.file(), line, message);
    return std::nullopt;
  }
}

std::optional<YAML::Node> LoadYamlFile(const std::string& path, Diagnostics& diags) {
  std::string error;
  auto text = ReadRegularFile(path, kMaxConfigBytes, error);
  if (!text) {
    diags.Add(path, 0, "cannot read: " + error);
    return std::nullopt;
  }
  Diagnostics local(path);
  auto node = LoadYamlString(*text, local);
  diags.Append(local);
  return node;
}

namespace {
MapReader::KeyObserver g_key_observer = nullptr;
}  // namespace

void MapReader::SetKeyObserver(KeyObserver observer) { g_key_observer = observer; }

MapReader::MapReader(const YAML::Node& node, std::string path, Diagnostics& diags)
    : node_(node), path_(std::move(path)), diags_(diags) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    diags_.Error(node_, (path_.empty() ? std::string("document") : path_) + ": expected a mapping");
    valid_ = false;
    return;
  }
  ReportDuplicateKeys(node_, path_, diags_);
}

void ReportDuplicateKeys(const YAML::Node& map, const std::string& path, Diagnostics& diags) {
  // yaml-cpp keeps both of `min: 2` and `min: 3` and lookups find the first:
  // a silent surprise, so a repeated key is an error.
  if (!map.IsMap()) return;
  std::map<std::string, int> first_line;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) continue;
    auto [it, fresh] = first_line.emplace(kv.first.Scalar(), LineOf(kv.first));
    if (!fresh)
      diags.Error(kv.first, (path.empty() ? "" : path + ".") + kv.first.Scalar() +
                                ": duplicate key (first at line " + std::to_string(it->second) +
                                ")");
  }
}

bool MapReader::Has(std::string_view key) const {
  if (g_key_observer != nullptr) g_key_observer(path_, key);  // asked for: a known key
  return valid_ && node_.IsMap() && node_[std::string(key)].IsDefined();
}

void MapReader::Mark(std::string_view key) {
  if (g_key_observer != nullptr) g_key_observer(path_, key);
  read_.emplace(key);
}

YAML::Node MapReader::Get(std::string_view key) {
  Mark(key);
  if (!valid_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return node_[std::string(key)];
}

std::string MapReader::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void MapReader::Error(std::string_view key, const std::string& message) {
  YAML::Node at = Has(key) ? node_[std::string(key)] : node_;
  // An empty value carries the position of whatever follows it: name the key's line.
  if (at.IsNull() && node_.IsMap()) {
    for (const auto& kv : node_) {
      if (kv.first.IsScalar() && kv.first.Scalar() == key) at = kv.first;
    }
  }
  diags_.Error(at, PathOf(key) + ": " + message);
}

template <typename T>
bool MapReader::ReadScalar(std::string_view key, T& out, const char* type_name) {
  YAML::Node value = Get(key);
  if (!value.IsDefined()) return false;
  // `cooldown:` with no value is a mistake, not an absent key: say so.
  if (value.IsNull()) {
    Error(key, std::string("expected ") + type_name + ", got no value");
    return false;
  }
  if (!value.IsScalar()) {
    Error(key, std::string("expected ") + type_name);
    return false;
  }
  try {
    out = value.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    Error(key, std::string("expected ") + type_name + ", got \"" + value.Scalar() + "\"");
    return false;
  }
}

bool MapReader::Read(std::string_view key, std::string& out) {
  return ReadScalar(key, out, "a string");
}
bool MapReader::Read(std::string_view key, bool& out) {
  return ReadScalar(key, out, "true or false");
}
bool MapReader::Read(std::string_view key, int64_t& out) {
  return ReadScalar(key, out, "an integer");
}
bool MapReader::Read(std::string_view key, double& out) {
  double value = 0;
  if (!ReadScalar(key, value, "a number")) return false;
  // YAML spells .inf and .nan; no key means either.
  if (!std::isfinite(value)) {
    Error(key, "expected a finite number, got \"" + Get(key).Scalar() + "\"");
    return false;
  }
  out = value;
  return true;
}

bool MapReader::ReadDuration(std::string_view key, Duration& out) {
  std::string text;
  if (!ReadScalar(key, text, "a duration")) return false;
  std::string why;
  auto parsed = ParseDuration(text, &why);
  if (!parsed) {
    Error(key, why);
    return false;
  }
  out = *parsed;
  return true;
}

bool MapReader::ReadStringList(std::string_view key, std::vector<std::string>& out) {
  YAML::Node value = Get(key);
  if (!value.IsDefined() || value.IsNull()) return false;
  if (!value.IsSequence()) {
    Error(key, "expected a list of strings");
    return false;
  }
  std::vector<std::string> items;
  for (const auto& item : value) {
    if (!item.IsScalar()) {
      diags_.Error(item, PathOf(key) + ": expected a string list item");
      return false;
    }
    items.push_back(item.Scalar());
  }
  out = std::move(items);
  return true;
}

bool MapReader::ReadStringMap(std::string_view key, std::map<std::string, std::string>& out) {
  YAML::Node value = Get(key);
  if (!value.IsDefined() || value.IsNull()) return false;
  if (!value.IsMap()) {
    Error(key, "expected a mapping of strings");
    return false;
  }
  std::map<std::string, std::string> items;
  for (const auto& kv : value) {
    if (!kv.second.IsScalar()) {
      diags_.Error(kv.second, PathOf(key) + "." + kv.first.Scalar() + ": expected a string");
      return false;
    }
    items[kv.first.Scalar()] = kv.second.Scalar();
  }
  out = std::move(items);
  return true;
}

bool MapReader::Require(std::string_view key) {
  Mark(key);
  if (Has(key)) return true;
  if (valid_) diags_.Error(node_, PathOf(key) + ": missing required key");
  return false;
}

void MapReader::Finish() {
  if (finished_ || !valid_ || !node_.IsMap()) return;
  finished_ = true;
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    if (read_.contains(key)) continue;
    const std::string nearest = NearestKey(key, read_);
    diags_.Error(kv.first, PathOf(key) + ": unknown key" +
                               (nearest.empty() ? "" : " (did you mean \"" + nearest + "\"?)"));
  }
}

}  // namespace virtscale
