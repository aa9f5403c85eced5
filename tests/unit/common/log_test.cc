#include "common/log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace virtscale {
namespace {

TEST(FormatLogLine, JsonKeepsNumbersAndBooleans) {
  const std::string line = FormatLogLine(LogFormat::kJson, "info", "scale action",
                                         {{"group", "web"},
                                          {"port", 9177},
                                          {"seconds", 0.25},
                                          {"tls", false},
                                          {"ratio", std::nan("")},
                                          {"text_number", std::string("42")}});
  const auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["group"], "web");
  EXPECT_TRUE(json["port"].is_number_integer());
  EXPECT_EQ(json["port"], 9177);
  EXPECT_EQ(json["seconds"], 0.25);
  EXPECT_TRUE(json["tls"].is_boolean());
  EXPECT_EQ(json["tls"], false);
  EXPECT_EQ(json["ratio"], "nan");       // JSON has no NaN
  EXPECT_EQ(json["text_number"], "42");  // a string stays a string
}

TEST(FormatLogLine, LogfmtWritesTypedValuesBareAndQuotesText) {
  const std::string line = FormatLogLine(LogFormat::kLogfmt, "warn", "scale action",
                                         {{"n", 3}, {"ok", true}, {"error", "no such domain"}});
  EXPECT_NE(line.find(" level=warn msg=\"scale action\" n=3 ok=true error=\"no such domain\""),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace virtscale
