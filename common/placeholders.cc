#include "common/placeholders.h"

#include <optional>

#include "common/utf8.h"

namespace virtscale {
namespace {

// The name of the placeholder starting at text[pos] (a '{'), or nullopt when
// the brace is literal text. `end` is set past the closing '}'.
std::optional<std::string_view> PlaceholderAt(std::string_view text, size_t pos, size_t& end) {
  size_t i = pos + 1;
  while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || text[i] == '_')) ++i;
  if (i == pos + 1 || i >= text.size() || text[i] != '}') return std::nullopt;
  end = i + 1;
  return text.substr(pos + 1, i - pos - 1);
}

const std::string* ValueOf(std::string_view name, const PlaceholderValues& v) {
  if (name == "domain") return &v.domain;
  if (name == "group") return &v.group;
  if (name == "address") return &v.address;
  return nullptr;
}

// Calls `visit(name, begin, end)` for every placeholder of `text`.
template <typename Visit>
void ForEachPlaceholder(std::string_view text, Visit visit) {
  for (size_t pos = text.find('{'); pos != std::string_view::npos; pos = text.find('{', pos + 1)) {
    size_t end = 0;
    if (auto name = PlaceholderAt(text, pos, end)) visit(*name, pos, end);
  }
}

}  // namespace

bool CheckPlaceholders(std::string_view text, std::string& error) {
  static const PlaceholderValues kNames;
  bool ok = true;
  ForEachPlaceholder(text, [&](std::string_view name, size_t, size_t) {
    if (ok && ValueOf(name, kNames) == nullptr) {
      error = "unknown placeholder {" + BoundedUtf8(name, 40) +
              "} (known: {domain}, {group}, {address})";
      ok = false;
    }
  });
  return ok;
}

bool UsesPlaceholder(std::string_view text, std::string_view name) {
  bool found = false;
  ForEachPlaceholder(text, [&](std::string_view n, size_t, size_t) { found |= n == name; });
  return found;
}

std::string SubstitutePlaceholders(std::string_view text, const PlaceholderValues& values,
                                   std::string (*escape)(std::string_view)) {
  std::string out;
  size_t copied = 0;
  ForEachPlaceholder(text, [&](std::string_view name, size_t begin, size_t end) {
    const std::string* value = ValueOf(name, values);
    if (value == nullptr) return;
    out.append(text.substr(copied, begin - copied));
    out += escape != nullptr ? escape(*value) : *value;
    copied = end;
  });
  out.append(text.substr(copied));
  return out;
}

std::vector<std::string> SubstituteArgv(const std::vector<std::string>& argv,
                                        const PlaceholderValues& values) {
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const std::string& arg : argv) out.push_back(SubstitutePlaceholders(arg, values));
  return out;
}

std::vector<std::pair<std::string, std::string>> PlaceholderEnvironment(
    const PlaceholderValues& values) {
  return {{"VIRTSCALE_DOMAIN", values.domain},
          {"VIRTSCALE_GROUP", values.group},
          {"VIRTSCALE_ADDRESS", values.address}};
}

}  // namespace virtscale
