#include "collectors/sources/prometheus_query.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "collectors/sources/text_format_parser.h"

namespace virtscale {
namespace {

using nlohmann::json;

SourceError BadJson(std::string message) { return {source_reason::kBadJson, std::move(message)}; }

// Outside text for a message: JSON strings are valid UTF-8, so a cut only has
// to avoid splitting a sequence.
std::string Clip(std::string_view text) {
  if (text.size() <= kMaxQuotedBytes) return std::string(text);
  size_t n = kMaxQuotedBytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
  return std::string(text.substr(0, n)) + "... (" + std::to_string(text.size()) + " bytes)";
}

// Nesting depth and (roughly, from above) the number of values of a JSON text:
// every value but the root follows a '[', ',' or ':' outside strings. Malformed
// text is left for the parser to reject.
std::optional<SourceError> CheckShape(std::string_view body, size_t max_values,
                                      std::string_view hint) {
  int depth = 0;
  size_t values = 1;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
        ++values;
        [[fallthrough]];
      case '{':
        if (++depth > kMaxJsonDepth) {
          return BadJson("response is nested deeper than " + std::to_string(kMaxJsonDepth) +
                         " levels");
        }
        break;
      case ']':
      case '}':
        --depth;
        break;
      case ',':
      case ':':
        ++values;
        break;
    }
    if (values > max_values) {
      return SourceError{source_reason::kTooLarge, "response holds more than " +
                                                       std::to_string(max_values) +
                                                       " JSON values; " + std::string(hint)};
    }
  }
  return std::nullopt;
}

// A sample is [unix_time, "value"]; NaN and infinities are values here.
SourceResult<std::pair<double, double>> Sample(const json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_string()) {
    return BadJson("sample value is not [timestamp, \"value\"]");
  }
  const auto& text = pair[1].get_ref<const std::string&>();
  auto value = ParsePrometheusFloat(text);
  if (!value) return BadJson("sample value " + QuoteForMessage(text) + " is not a number");
  return std::pair{pair[0].get<double>(), *value};
}

SourceResult<double> SampleValue(const json& pair) {
  auto sample = Sample(pair);
  if (!sample.ok()) return sample.error();
  return CheckFinite(sample.value().second, "query result");
}

struct QueryData {
  std::string result_type;
  json result;
};

// The "data" of a query API answer with status "success", within the bounds.
SourceResult<QueryData> DecodeAnswer(std::string_view body, size_t max_values,
                                     std::string_view too_large_hint) {
  if (auto error = CheckShape(body, max_values, too_large_hint)) return *error;
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return BadJson("response is not valid JSON");
  if (!doc.is_object()) return BadJson("response is not a JSON object");
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_string()) return BadJson("response has no \"status\"");
  if (*status == "error") {
    std::string message = "query failed";
    if (auto type = doc.find("errorType"); type != doc.end() && type->is_string()) {
      message = Clip(type->get_ref<const std::string&>());
    }
    if (auto error = doc.find("error"); error != doc.end() && error->is_string()) {
      message += ": " + Clip(error->get_ref<const std::string&>());
    }
    return SourceError{source_reason::kQueryError, message};
  }
  if (*status != "success") {
    return BadJson("unexpected status " + QuoteForMessage(status->get_ref<const std::string&>()));
  }
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return BadJson("response has no \"data\" object");
  auto type = data->find("resultType");
  auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return BadJson("response data has no \"resultType\" and \"result\"");
  }
  return QueryData{type->get<std::string>(), std::move(*result)};
}

}  // namespace

SourceResult<double> ParsePrometheusQueryResponse(std::string_view body) {
  auto answer =
      DecodeAnswer(body, kMaxJsonValues,
                   "a query for one series answers with about ten (aggregate it, e.g. sum(...))");
  if (!answer.ok()) return answer.error();
  const std::string& result_type = answer.value().result_type;
  const json* result = &answer.value().result;
  if (result_type == "scalar") return SampleValue(*result);
  if (result_type == "vector") {
    if (!result->is_array()) return BadJson("vector result is not an array");
    if (result->empty())
      return SourceError{source_reason::kEmptyVector, "query returned no series"};
    if (result->size() > 1) {
      return SourceError{source_reason::kMultipleSeries,
                         "query returned " + std::to_string(result->size()) +
                             " series; aggregate them, e.g. sum(...)"};
    }
    const json& sample = (*result)[0];
    if (!sample.is_object() || !sample.contains("value")) {
      return BadJson("vector sample has no \"value\"");
    }
    return SampleValue(sample["value"]);
  }
  if (result_type == "matrix" || result_type == "string") {
    return SourceError{source_reason::kQueryError,
                       "query returned a " + result_type + "; want a scalar or an instant vector"};
  }
  return BadJson("unknown resultType " + QuoteForMessage(result_type));
}

SourceResult<std::vector<PrometheusSeries>> ParsePrometheusRangeResponse(std::string_view body) {
  auto answer = DecodeAnswer(body, kMaxRangeJsonValues,
                             "ask for fewer series, a shorter range or a longer step");
  if (!answer.ok()) return answer.error();
  const std::string& result_type = answer.value().result_type;
  const json& result = answer.value().result;
  if (result_type == "vector" || result_type == "scalar" || result_type == "string") {
    return SourceError{source_reason::kQueryError,
                       "range query returned a " + result_type + "; want a matrix"};
  }
  if (result_type != "matrix") return BadJson("unknown resultType " + QuoteForMessage(result_type));
  if (!result.is_array()) return BadJson("matrix result is not an array");
  std::vector<PrometheusSeries> out;
  out.reserve(result.size());
  for (const json& series : result) {
    if (!series.is_object()) return BadJson("matrix series is not an object");
    PrometheusSeries& decoded = out.emplace_back();
    if (auto metric = series.find("metric"); metric != series.end() && metric->is_object()) {
      for (const auto& label : metric->items()) {
        if (label.value().is_string()) decoded.labels.emplace(label.key(), label.value());
      }
    }
    auto values = series.find("values");
    if (values == series.end()) continue;
    if (!values->is_array()) return BadJson("matrix series \"values\" is not an array");
    decoded.samples.reserve(values->size());
    for (const json& pair : *values) {
      auto sample = Sample(pair);
      if (!sample.ok()) return sample.error();
      decoded.samples.push_back(sample.value());
    }
  }
  return out;
}

}  // namespace virtscale
