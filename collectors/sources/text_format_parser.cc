#include "collectors/sources/text_format_parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "common/utf8.h"

namespace virtscale {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsMetricNameStart(char c) { return IsAlpha(c) || c == '_' || c == ':'; }
bool IsMetricNameChar(char c) { return IsMetricNameStart(c) || IsDigit(c); }
bool IsLabelNameStart(char c) { return IsAlpha(c) || c == '_'; }
bool IsLabelNameChar(char c) { return IsLabelNameStart(c) || IsDigit(c); }

// One byte for a message: printable ASCII as is, anything else as QuoteForMessage
// escapes it (a lone byte above 0x7f is never valid UTF-8).
std::string Shown(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string(1, c);
  const std::string q = QuoteForMessage(std::string_view(&c, 1));
  return q.substr(1, q.size() - 2);
}

std::string QuoteChar(char c) {
  if (c == '\'') return "'\\''";
  if (c == '"') return "'\"'";
  return "'" + (c == '\\' ? std::string("\\\\") : Shown(c)) + "'";
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<int64_t> ParseInt64(std::string_view s) {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && s.front() == '-') return std::nullopt;
  }
  if (s.empty() || s.front() == '+') return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

enum class FamilyType { kUnset, kCounter, kGauge, kHistogram, kSummary, kUntyped };

struct Family {
  FamilyType type = FamilyType::kUnset;
  bool has_help = false;
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Mirrors expfmt.TextParser, whose state machine this follows step by step so
// that accept/reject decisions (and messages) match promtool's.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  SourceResult<std::vector<ExpositionSample>> Run() {
    while (true) {
      ++line_;
      SkipBlanks();
      if (AtEnd()) break;  // the only place where the end of input is fine
      if (Cur() == '\n') {
        ++pos_;
        continue;
      }
      const bool ok = Cur() == '#' ? Comment() : Sample();
      if (!ok)
        return SourceError{source_reason::kParse, "line " + std::to_string(line_) + ": " + error_};
    }
    return std::move(samples_);
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Cur() const { return text_[pos_]; }
  void SkipBlanks() {
    while (!AtEnd() && IsBlank(Cur())) ++pos_;
  }
  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }
  bool Eof() { return Fail("unexpected end of input stream"); }
  // expfmt's skipBlankTab: step past the current byte, then past blanks.
  bool Advance() {
    ++pos_;
    SkipBlanks();
    return !AtEnd();
  }
  std::string_view TokenUntilWhitespace() {
    const size_t start = pos_;
    while (!AtEnd() && !IsWhitespace(Cur())) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  std::string_view Name(bool (*start)(char), bool (*rest)(char)) {
    const size_t begin = pos_;
    if (AtEnd() || !start(Cur())) return {};
    while (!AtEnd() && rest(Cur())) ++pos_;
    return text_.substr(begin, pos_ - begin);
  }
  // Reads up to (not past) the newline. With escapes, only \\ and \n are valid;
  // without, backslashes are dropped, as expfmt does.
  bool UntilNewline(bool escapes, std::string& out) {
    out.clear();
    bool escaped = false;
    for (; !AtEnd(); ++pos_) {
      const char c = Cur();
      if (escapes && escaped) {
        if (c == '\\') {
          out += '\\';
        } else if (c == 'n') {
          out += '\n';
        } else {
          return Fail("invalid escape sequence '\\" + Shown(c) + "'");
        }
        escaped = false;
      } else if (c == '\n') {
        return true;
      } else if (c == '\\') {
        escaped = true;
      } else {
        out += c;
      }
    }
    return Eof();
  }

  // Null (with the error set) when a new family would exceed the limit.
  Family* FamilyOf(const std::string& name) {
    if (auto it = families_.find(name); it != families_.end()) return &it->second;
    for (std::string_view suffix : {"_count", "_sum", "_bucket"}) {
      if (!EndsWith(name, suffix)) continue;
      auto it = families_.find(name.substr(0, name.size() - suffix.size()));
      if (it == families_.end()) continue;
      if (it->second.type == FamilyType::kSummary && suffix != "_bucket") return &it->second;
      if (it->second.type == FamilyType::kHistogram) return &it->second;
    }
    if (families_.size() >= kMaxExpositionFamilies) {
      Fail(TooMany(kMaxExpositionFamilies, "metric families"));
      return nullptr;
    }
    return &families_[name];
  }

  static std::string TooMany(size_t limit, std::string_view what) {
    return "more than " + std::to_string(limit) + " " + std::string(what) +
           ": too large for a scrape source, which reads one series";
  }

  bool Comment() {
    if (!Advance()) return Eof();
    if (Cur() == '\n') return ++pos_, true;
    const std::string_view keyword = TokenUntilWhitespace();
    if (AtEnd()) return Eof();
    if (Cur() == '\n') return ++pos_, true;
    if (keyword != "HELP" && keyword != "TYPE") {
      while (!AtEnd() && Cur() != '\n') ++pos_;
      if (AtEnd()) return Eof();
      return ++pos_, true;
    }
    if (!Advance()) return Eof();
    const std::string name(Name(IsMetricNameStart, IsMetricNameChar));
    if (AtEnd()) return Eof();
    if (Cur() == '\n') return ++pos_, true;
    if (!IsBlank(Cur())) return Fail("invalid metric name in comment");
    Family* family = FamilyOf(name);
    if (!family) return false;
    if (!Advance()) return Eof();
    if (Cur() == '\n') return ++pos_, true;
    std::string rest;
    if (keyword == "HELP") {
      if (family->has_help)
        return Fail("second HELP line for metric name " + QuoteForMessage(name));
      if (!UntilNewline(true, rest)) return false;
      family->has_help = true;
    } else {
      if (family->type != FamilyType::kUnset) {
        return Fail("second TYPE line for metric name " + QuoteForMessage(name) +
                    ", or TYPE reported after samples");
      }
      if (!UntilNewline(false, rest)) return false;
      static constexpr std::pair<std::string_view, FamilyType> kTypes[] = {
          {"counter", FamilyType::kCounter},
          {"gauge", FamilyType::kGauge},
          {"histogram", FamilyType::kHistogram},
          {"summary", FamilyType::kSummary},
          {"untyped", FamilyType::kUntyped}};
      auto it = std::find_if(std::begin(kTypes), std::end(kTypes),
                             [&](const auto& t) { return EqualsIgnoreCase(t.first, rest); });
      if (it == std::end(kTypes)) return Fail("unknown metric type " + QuoteForMessage(rest));
      family->type = it->second;
    }
    return ++pos_, true;
  }

  bool Sample() {
    ExpositionSample sample;
    sample.line = line_;
    sample.name = std::string(Name(IsMetricNameStart, IsMetricNameChar));
    if (AtEnd()) return Eof();
    if (sample.name.empty()) return Fail("invalid metric name");
    Family* family = FamilyOf(sample.name);
    if (!family) return false;
    if (family->type == FamilyType::kUnset) family->type = FamilyType::kUntyped;
    SkipBlanks();
    if (AtEnd()) return Eof();
    if (Cur() == '{' && !Labels(*family, sample)) return false;
    if (AtEnd()) return Eof();

    const std::string_view value = TokenUntilWhitespace();
    if (AtEnd()) return Eof();
    auto parsed = ParsePrometheusFloat(value);
    if (!parsed) return Fail("expected float as value, got " + QuoteForMessage(value));
    sample.value = *parsed;
    if (Cur() != '\n') {
      if (!Advance()) return Eof();
      const std::string_view ts = TokenUntilWhitespace();
      if (AtEnd()) return Eof();
      auto timestamp = ParseInt64(ts);
      if (!timestamp) return Fail("expected integer as timestamp, got " + QuoteForMessage(ts));
      sample.timestamp_ms = *timestamp;
      std::string spurious;
      if (!UntilNewline(false, spurious)) return false;
      if (!spurious.empty())
        return Fail("spurious string after timestamp: " + QuoteForMessage(spurious));
    }
    ++pos_;
    if (samples_.size() >= kMaxExpositionSamples)
      return Fail(TooMany(kMaxExpositionSamples, "samples"));
    samples_.push_back(std::move(sample));
    return true;
  }

  // At '{'; returns with the position on the first byte of the value.
  bool Labels(const Family& family, ExpositionSample& sample) {
    std::vector<std::string> plain_names;  // expfmt checks duplicates among these only
    while (true) {
      if (!Advance()) return Eof();
      if (Cur() == '}') return Advance() || Eof();
      const std::string name(Name(IsLabelNameStart, IsLabelNameChar));
      if (AtEnd()) return Eof();
      if (name.empty())
        return Fail("invalid label name for metric " + QuoteForMessage(sample.name));
      if (name == "__name__") return Fail("label name \"__name__\" is reserved");
      const bool special = (family.type == FamilyType::kSummary && name == "quantile") ||
                           (family.type == FamilyType::kHistogram && name == "le");
      if (!special) plain_names.push_back(name);
      SkipBlanks();
      if (AtEnd()) return Eof();
      if (Cur() != '=') return Fail("expected '=' after label name, found " + QuoteChar(Cur()));
      if (std::count(plain_names.begin(), plain_names.end(), name) > 1) {
        return Fail("duplicate label names for metric " + QuoteForMessage(sample.name));
      }
      if (!Advance()) return Eof();
      if (Cur() != '"') {
        return Fail("expected '\"' at start of label value, found " + QuoteChar(Cur()));
      }
      std::string value;
      if (!LabelValue(value)) return false;
      if (!IsValidUtf8(value)) return Fail("invalid label value " + QuoteForMessage(value));
      if (special && !ParsePrometheusFloat(value)) {
        return Fail("expected float as value for '" + name + "' label, got " +
                    QuoteForMessage(value));
      }
      if (++labels_ > kMaxExpositionLabels) return Fail(TooMany(kMaxExpositionLabels, "labels"));
      sample.labels.emplace(name, value);
      if (!Advance()) return Eof();
      if (Cur() == '}') return Advance() || Eof();
      if (Cur() != ',') return Fail("unexpected end of label value " + QuoteForMessage(value));
    }
  }

  // At the opening quote; returns on the closing quote.
  bool LabelValue(std::string& out) {
    bool escaped = false;
    while (true) {
      ++pos_;
      if (AtEnd()) return Eof();
      const char c = Cur();
      if (escaped) {
        if (c == '"' || c == '\\') {
          out += c;
        } else if (c == 'n') {
          out += '\n';
        } else {
          return Fail("invalid escape sequence '\\" + Shown(c) + "'");
        }
        escaped = false;
      } else if (c == '"') {
        return true;
      } else if (c == '\n') {
        return Fail("label value " + QuoteForMessage(out) + " contains unescaped new-line");
      } else if (c == '\\') {
        escaped = true;
      } else {
        out += c;
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 0;
  std::string error_;
  size_t labels_ = 0;  // label pairs kept so far, of all samples
  std::unordered_map<std::string, Family> families_;
  std::vector<ExpositionSample> samples_;
};

}  // namespace

std::optional<double> ParsePrometheusFloat(std::string_view text) {
  if (text.find_first_of("pP_") != std::string_view::npos) return std::nullopt;
  std::string_view body = text;
  bool negative = false;
  if (!body.empty() && (body.front() == '+' || body.front() == '-')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
    if (EqualsIgnoreCase(body, "inf") || EqualsIgnoreCase(body, "infinity")) {
      return negative ? -HUGE_VAL : HUGE_VAL;
    }
  } else if (EqualsIgnoreCase(body, "inf") || EqualsIgnoreCase(body, "infinity")) {
    return HUGE_VAL;
  } else if (EqualsIgnoreCase(body, "nan")) {
    return std::nan("");
  }
  // digits [. digits] | . digits, then an optional exponent.
  size_t i = 0;
  size_t digits = 0;
  while (i < body.size() && IsDigit(body[i])) ++i, ++digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && IsDigit(body[i])) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    const size_t exp_start = i;
    while (i < body.size() && IsDigit(body[i])) ++i;
    if (i == exp_start) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), value);
  if (ec == std::errc::result_out_of_range) {
    // Go returns an error on overflow but a (denormal or zero) value on underflow.
    value = std::strtod(std::string(body).c_str(), nullptr);
    if (std::isinf(value)) return std::nullopt;
  } else if (ec != std::errc() || end != body.data() + body.size()) {
    return std::nullopt;
  }
  return negative ? -value : value;
}

SourceResult<std::vector<ExpositionSample>> ParseExposition(std::string_view text) {
  return Parser(text).Run();
}

std::string QuoteForMessage(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto hex = [](unsigned char c) {
    return std::string{'\\', 'x', kHex[c >> 4], kHex[c & 15]};
  };
  const std::string_view shown = text.substr(0, kMaxQuotedBytes);
  std::string out = "\"";
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto c = static_cast<unsigned char>(shown[i]);
    if (c >= 0x80) {
      // A well-formed sequence is copied whole; each byte of anything else is escaped.
      const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      if (i + len <= shown.size() && IsValidUtf8(shown.substr(i, len))) {
        out += shown.substr(i, len);
        i += len - 1;
      } else {
        out += hex(c);
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += hex(c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (shown.size() < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string FormatSeries(std::string_view name, const std::map<std::string, std::string>& labels) {
  // Names are ASCII (the grammar says so) but of any length.
  const auto cut = [](std::string_view s) {
    return s.size() <= kMaxQuotedBytes ? std::string(s)
                                       : std::string(s.substr(0, kMaxQuotedBytes)) + "...";
  };
  std::string out = cut(name);
  if (labels.empty()) return out;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    if (out.size() > kMaxSeriesBytes) {
      out += "...";
      break;
    }
    first = false;
    out += cut(k) + "=" + QuoteForMessage(v);
  }
  return out + '}';
}

SourceResult<double> CheckFinite(double value, std::string_view what) {
  if (std::isnan(value)) return SourceError{source_reason::kNan, std::string(what) + " is NaN"};
  if (std::isinf(value)) {
    return SourceError{source_reason::kInf,
                       std::string(what) + " is " + (value > 0 ? "+Inf" : "-Inf")};
  }
  return value;
}

SourceResult<double> SelectSample(const std::vector<ExpositionSample>& samples,
                                  std::string_view metric,
                                  const std::map<std::string, std::string>& labels, bool sum) {
  std::vector<const ExpositionSample*> matches;
  const ExpositionSample* same_name = nullptr;
  size_t same_name_count = 0;
  for (const auto& s : samples) {
    if (s.name != metric) continue;
    ++same_name_count;
    if (!same_name) same_name = &s;
    const bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& m) {
      auto it = s.labels.find(m.first);
      return it == s.labels.end() ? m.second.empty() : it->second == m.second;
    });
    if (match) matches.push_back(&s);
  }
  const std::string wanted = FormatSeries(metric, labels);
  if (matches.empty()) {
    std::string message = "no series matches " + wanted;
    if (same_name) {
      message += " (" + std::to_string(same_name_count) + " series named " + std::string(metric) +
                 ", e.g. " + FormatSeries(metric, same_name->labels) + ")";
    }
    return SourceError{source_reason::kNoSeries, message};
  }
  if (matches.size() > 1 && !sum) {
    return SourceError{source_reason::kMultipleSeries,
                       std::to_string(matches.size()) + " series match " + wanted + " (e.g. " +
                           FormatSeries(metric, matches[0]->labels) + ", " +
                           FormatSeries(metric, matches[1]->labels) +
                           "); add label matchers or set sum: true"};
  }
  double total = 0;
  for (const auto* s : matches) total += s->value;
  return CheckFinite(total, matches.size() > 1 ? "sum of " + wanted : wanted);
}

}  // namespace virtscale
