#include "collectors/sources/prometheus_query.h"

#include <nlohmann/json.hpp>

#include "collectors/sources/exposition.h"

namespace virtscale {
namespace {

using nlohmann::json;

SourceError BadJson(std::string message) { return {source_reason::kBadJson, std::move(message)}; }

// A sample value is [unix_time, "value"].
SourceResult<double> SampleValue(const json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_string()) {
    return BadJson("sample value is not [timestamp, \"value\"]");
  }
  const auto& text = pair[1].get_ref<const std::string&>();
  auto value = ParsePrometheusFloat(text);
  if (!value) return BadJson("sample value \"" + text + "\" is not a number");
  return CheckFinite(*value, "query result");
}

}  // namespace

SourceResult<double> ParsePrometheusQueryResponse(std::string_view body) {
  const json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return BadJson("response is not valid JSON");
  if (!doc.is_object()) return BadJson("response is not a JSON object");
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_string()) return BadJson("response has no \"status\"");
  if (*status == "error") {
    std::string message = "query failed";
    if (auto type = doc.find("errorType"); type != doc.end() && type->is_string()) {
      message = type->get<std::string>();
    }
    if (auto error = doc.find("error"); error != doc.end() && error->is_string()) {
      message += ": " + error->get<std::string>();
    }
    return SourceError{source_reason::kQueryError, message};
  }
  if (*status != "success") {
    return BadJson("unexpected status \"" + status->get<std::string>() + "\"");
  }
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return BadJson("response has no \"data\" object");
  auto type = data->find("resultType");
  auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return BadJson("response data has no \"resultType\" and \"result\"");
  }
  const auto& result_type = type->get_ref<const std::string&>();
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
  return BadJson("unknown resultType \"" + result_type + "\"");
}

}  // namespace virtscale
