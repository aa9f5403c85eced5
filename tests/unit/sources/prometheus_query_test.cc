#include "collectors/sources/prometheus_query.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <utility>

namespace virtscale {
namespace {

TEST(ParsePrometheusQueryResponse, VectorWithOneSample) {
  auto r = ParsePrometheusQueryResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[)"
      R"({"metric":{"__name__":"up","job":"self"},"value":[1795731295.729,"17"]}]}})");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value(), 17);
}

TEST(ParsePrometheusQueryResponse, Scalar) {
  auto r = ParsePrometheusQueryResponse(
      R"({"status":"success","data":{"resultType":"scalar","result":[1795731295.736,"1.5e2"]}})");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value(), 150);
}

TEST(ParsePrometheusQueryResponse, ZeroIsAValue) {
  auto r = ParsePrometheusQueryResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0"]}]},"warnings":["w"]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 0);
}

TEST(ParsePrometheusQueryResponse, EveryErrorHasAReasonAndMessage) {
  struct Case {
    const char* body;
    const char* error;
  };
  const Case cases[] = {
      {R"({"status":"success","data":{"resultType":"vector","result":[]}})",
       "empty_vector: query returned no series"},
      {R"({"status":"success","data":{"resultType":"vector","result":[)"
       R"({"metric":{"q":"a"},"value":[1,"1"]},{"metric":{"q":"b"},"value":[1,"2"]}]}})",
       "multiple_series: query returned 2 series; aggregate them, e.g. sum(...)"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}})",
       "nan: query result is NaN"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}})",
       "inf: query result is +Inf"},
      {R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"})",
       "query_error: bad_data: 1:5: parse error: unclosed left parenthesis"},
      {R"({"status":"error"})", "query_error: query failed"},
      {R"({"status":"success","data":{"resultType":"matrix","result":[]}})",
       "query_error: query returned a matrix; want a scalar or an instant vector"},
      {R"({"status":"success","data":{"resultType":"string","result":[1,"x"]}})",
       "query_error: query returned a string; want a scalar or an instant vector"},
      {"", "bad_json: response is not valid JSON"},
      {"<html>502 Bad Gateway</html>", "bad_json: response is not valid JSON"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]})",
       "bad_json: response is not valid JSON"},
      {"[1,2]", "bad_json: response is not a JSON object"},
      {R"({"data":{}})", "bad_json: response has no \"status\""},
      {R"({"status":"pending"})", "bad_json: unexpected status \"pending\""},
      {R"({"status":"success"})", "bad_json: response has no \"data\" object"},
      {R"({"status":"success","data":{"result":[]}})",
       "bad_json: response data has no \"resultType\" and \"result\""},
      {R"({"status":"success","data":{"resultType":"vector","result":{}}})",
       "bad_json: vector result is not an array"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
       "bad_json: vector sample has no \"value\""},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}})",
       "bad_json: sample value is not [timestamp, \"value\"]"},
      {R"({"status":"success","data":{"resultType":"scalar","result":[1,"many"]}})",
       "bad_json: sample value \"many\" is not a number"},
      {R"({"status":"success","data":{"resultType":"histogram","result":[]}})",
       "bad_json: unknown resultType \"histogram\""},
  };
  for (const auto& c : cases) {
    auto r = ParsePrometheusQueryResponse(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().ToString(), c.error) << c.body;
  }
}

// A hostile answer is refused before a tree is built for it.
TEST(ParsePrometheusQueryResponse, RefusesDeepAndHugeAnswersCheaply) {
  const size_t deep = 4 << 20;
  EXPECT_EQ(ParsePrometheusQueryResponse(std::string(deep, '[') + std::string(deep, ']'))
                .error()
                .ToString(),
            "bad_json: response is nested deeper than 32 levels");
  // Brackets inside strings are text, not nesting.
  const std::string in_string = R"({"status":"error","error":")" + std::string(100, '[') + "\"}";
  EXPECT_EQ(ParsePrometheusQueryResponse(in_string).error().reason, "query_error");
  // 32 levels are fine (and then rejected for what they are).
  const std::string nested = std::string(31, '[') + std::string(31, ']');
  EXPECT_EQ(ParsePrometheusQueryResponse(R"({"status":)" + nested + "}").error().ToString(),
            "bad_json: response has no \"status\"");

  std::string many = R"({"status":"success","data":{"resultType":"vector","result":[)";
  for (size_t i = 0; i < kMaxJsonValues; ++i) many += "0,";
  many += "0]}}";
  EXPECT_EQ(ParsePrometheusQueryResponse(many).error().ToString(),
            "response_too_large: response holds more than 100000 JSON values; a query for one "
            "series answers with about ten (aggregate it, e.g. sum(...))");
  // A realistic multi-series answer still gets the helpful message.
  std::string series = R"({"status":"success","data":{"resultType":"vector","result":[)";
  for (int i = 0; i < 1000; ++i)
    series += R"({"metric":{"i":")" + std::to_string(i) + R"("},"value":[1,"1"]},)";
  series.back() = ']';
  series += "}}";
  EXPECT_EQ(ParsePrometheusQueryResponse(series).error().reason, "multiple_series");
}

TEST(ParsePrometheusRangeResponse, MatrixSeriesWithLabelsAndSamples) {
  auto r = ParsePrometheusRangeResponse(
      R"({"status":"success","data":{"resultType":"matrix","result":[)"
      R"({"metric":{"domain":"web-1","n":3},"values":[[1714521600,"0.5"],[1714521660.5,"NaN"]]},)"
      R"({"metric":{},"values":[]},{"metric":{"domain":"web-2"}}]}})");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(r.value()[0].labels, (std::map<std::string, std::string>{{"domain", "web-1"}}));
  ASSERT_EQ(r.value()[0].samples.size(), 2u);
  EXPECT_EQ(r.value()[0].samples[0], (std::pair<double, double>{1714521600, 0.5}));
  EXPECT_EQ(r.value()[0].samples[1].first, 1714521660.5);
  EXPECT_TRUE(std::isnan(r.value()[0].samples[1].second));  // a gap, not an error
  EXPECT_TRUE(r.value()[1].samples.empty());
  EXPECT_TRUE(r.value()[2].samples.empty());
}

TEST(ParsePrometheusRangeResponse, ErrorsShareTheInstantQueryDecoding) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"status":"error","errorType":"bad_data","error":"parse error"})",
       "query_error: bad_data: parse error"},
      {R"({"status":"success","data":{"resultType":"vector","result":[]}})",
       "query_error: range query returned a vector; want a matrix"},
      {R"({"status":"success","data":{"resultType":"matrix","result":{}}})",
       "bad_json: matrix result is not an array"},
      {R"({"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,2]]}]}})",
       "bad_json: sample value is not [timestamp, \"value\"]"},
      {R"({"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"x"]]}]}})",
       "bad_json: sample value \"x\" is not a number"},
      {"[", "bad_json: response is not valid JSON"},
      {std::string(40, '[') + std::string(40, ']'),
       "bad_json: response is nested deeper than 32 levels"},
  };
  for (const auto& [body, error] : cases) {
    auto r = ParsePrometheusRangeResponse(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().ToString(), error) << body;
  }
  // Many samples are fine where an instant query refuses them; the bound is higher.
  std::string big = R"({"status":"success","data":{"resultType":"matrix","result":[{"values":[)";
  for (int i = 0; i < 50000; ++i) big += "[" + std::to_string(i) + R"(,"1"],)";
  big.back() = ']';
  big += "}]}}";
  auto r = ParsePrometheusRangeResponse(big);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r.value()[0].samples.size(), 50000u);
  std::string huge = R"({"status":"success","data":{"resultType":"matrix","result":[)";
  for (size_t i = 0; i <= kMaxRangeJsonValues; ++i) huge += "0,";
  huge += "0]}}";
  EXPECT_EQ(ParsePrometheusRangeResponse(huge).error().reason, "response_too_large");
}

TEST(ParsePrometheusQueryResponse, QuotedTextIsCutAndValidUtf8) {
  const std::string long_error(1 << 20, 'e');
  auto r = ParsePrometheusQueryResponse(R"({"status":"error","errorType":"bad_data","error":")" +
                                        long_error + "\"}");
  EXPECT_EQ(r.error().ToString(),
            "query_error: bad_data: " + std::string(120, 'e') + "... (1048576 bytes)");
  // A cut never splits a character: 119 bytes of 'e' then a 3-byte one.
  auto cut = ParsePrometheusQueryResponse(R"({"status":"error","error":")" + std::string(119, 'e') +
                                          "\u2713" + "tail\"}");
  EXPECT_EQ(cut.error().message, "query failed: " + std::string(119, 'e') + "... (126 bytes)");
  EXPECT_EQ(ParsePrometheusQueryResponse(R"({"status":"success","data":{"resultType":"scalar",)"
                                         R"("result":[1,")" +
                                         std::string(500, '9') + "x\"]}}")
                .error()
                .message,
            "sample value \"" + std::string(120, '9') + "\"... (501 bytes) is not a number");
  // Invalid UTF-8 inside a JSON string makes the document invalid.
  EXPECT_EQ(ParsePrometheusQueryResponse("{\"status\":\"caf\xe9\"}").error().ToString(),
            "bad_json: response is not valid JSON");
}

TEST(ParsePrometheusQueryResponseFuzz, TruncationsAndRandomBytesNeverCrash) {
  const std::string good =
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1.5,"42"]}]}})";
  for (size_t len = 0; len < good.size(); ++len) {
    auto r = ParsePrometheusQueryResponse(std::string_view(good).substr(0, len));
    EXPECT_FALSE(r.ok()) << len;  // a cut document is never a value
  }
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\":,0123456789.eE+-tfnulasr \\";
  for (int i = 0; i < 3000; ++i) {
    std::string input = good;
    for (int k = 0; k < 2; ++k) input[rng() % input.size()] = alphabet[rng() % alphabet.size()];
    auto r = ParsePrometheusQueryResponse(input);
    if (r.ok()) {
      EXPECT_FALSE(std::isnan(r.value()));
    } else {
      EXPECT_FALSE(r.error().reason.empty());
    }
    std::string noise(rng() % 64, '\0');
    for (auto& c : noise) c = static_cast<char>(rng() & 0xff);
    EXPECT_FALSE(ParsePrometheusQueryResponse(noise).ok());
  }
}

}  // namespace
}  // namespace virtscale
