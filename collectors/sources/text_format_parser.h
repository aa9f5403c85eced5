#pragma once
// Parser for the Prometheus text exposition format (version 0.0.4), and the
// series selection the `scrape` source does on its result. Pure functions: no
// I/O, never throw, safe on any input.
//
// Hand-written because no C++ library packaged in Debian parses the text format
// (prometheus-cpp only serialises it).
//
// It accepts what `promtool check metrics` (Go expfmt.TextParser) accepts:
// HELP/TYPE/comment lines (so OpenMetrics' `# EOF` is a comment), blank lines,
// leading blanks, label values with `\\`, `\"`, `\n` escapes, trailing commas
// in label sets, values such as 1e3, +Inf, -Inf, NaN, optional integer
// millisecond timestamps. Like promtool it requires the final line to end with
// a newline, which also catches a truncated body. Errors name the line, and
// quote what they saw as valid UTF-8 (invalid bytes as \xNN) of bounded length:
//
//   auto samples = ParseExposition("queue_depth{queue=\"jobs\"} 12\n");
//   // samples.value()[0]: name "queue_depth", labels {queue: jobs}, value 12
//   ParseExposition("queue_depth abc\n").error().message
//   // -> "line 1: expected float as value, got \"abc\""
//
// A hostile endpoint must not make the parser's memory grow with the body
// (about 250 bytes per sample kept, 110 per label pair, 100 per metric family,
// from a body of up to 16 MiB): more than the limits below is a parse error. A
// scrape source reads one series; a target this large belongs behind Prometheus
// (a `prometheus` source).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/sources/source_result.h"

namespace virtscale {

inline constexpr size_t kMaxExpositionSamples = 100000;
inline constexpr size_t kMaxExpositionLabels = 250000;  // label pairs of all samples together
inline constexpr size_t kMaxExpositionFamilies = 100000;

struct ExpositionSample {
  std::string name;                           // full sample name, e.g. "foo_bucket"
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
  std::optional<int64_t> timestamp_ms;
  int line = 0;  // 1-based
};

// Parses a whole exposition body. Error reason: "parse".
[[nodiscard]] SourceResult<std::vector<ExpositionSample>> ParseExposition(std::string_view text);

// Parses a sample value as Go's strconv.ParseFloat does for Prometheus: decimal
// notation, Inf/Infinity with optional sign, NaN (any case); no hex, no '_'.
// Out-of-range values (1e400) are rejected.
[[nodiscard]] std::optional<double> ParsePrometheusFloat(std::string_view text);

// Picks the value of the series called `metric` whose labels equal every
// matcher (a matcher with value "" matches an absent label, as in PromQL).
// Exactly one series must match unless `sum` is set, when all matches are
// added. No match is "no_series"; several without `sum` is "multiple_series";
// NaN/Inf results are "nan"/"inf". Never returns 0 for a missing series.
[[nodiscard]] SourceResult<double> SelectSample(const std::vector<ExpositionSample>& samples,
                                                std::string_view metric,
                                                const std::map<std::string, std::string>& labels,
                                                bool sum);

// Rejects NaN ("nan") and +/-Inf ("inf"); `what` names the value in messages.
[[nodiscard]] SourceResult<double> CheckFinite(double value, std::string_view what);

// `name{a="b",c="d"}` with values quoted by QuoteForMessage, for messages:
// names are cut like quoted text, and labels past kMaxSeriesBytes become "...".
inline constexpr size_t kMaxSeriesBytes = 400;
std::string FormatSeries(std::string_view name, const std::map<std::string, std::string>& labels);

// `text` in double quotes for a message, as Go's %q does: quotes, backslashes
// and control characters escaped, invalid UTF-8 bytes as \xNN. Only the first
// kMaxQuotedBytes are shown, then `... (N bytes)`:
//   QuoteForMessage("caf\xe9") -> "\"caf\\xe9\""
inline constexpr size_t kMaxQuotedBytes = 120;
std::string QuoteForMessage(std::string_view text);

}  // namespace virtscale
