#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>

namespace virtscale {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kLogfmt};

std::string Timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t secs = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(millis));
  return out;
}

// logfmt quotes values holding spaces, quotes, '=' or nothing at all.
void AppendLogfmtValue(std::string& out, std::string_view value) {
  bool quote = value.empty();
  for (char c : value)
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      quote = true;
  if (!quote) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}

std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    default:
      return "error";
  }
}

}  // namespace

std::string LogValue::Text() const {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return fmt::format("{}", v);
        } else {
          return std::to_string(v);
        }
      },
      v_);
}

bool SetupLogging(std::string_view level, std::string_view format) {
  spdlog::level::level_enum lvl;
  if (level == "debug") {
    lvl = spdlog::level::debug;
  } else if (level == "info") {
    lvl = spdlog::level::info;
  } else if (level == "warn") {
    lvl = spdlog::level::warn;
  } else if (level == "error") {
    lvl = spdlog::level::err;
  } else {
    return false;
  }
  if (format == "logfmt") {
    g_format = LogFormat::kLogfmt;
  } else if (format == "json") {
    g_format = LogFormat::kJson;
  } else {
    return false;
  }
  auto logger = spdlog::stderr_logger_mt("virtscale");
  logger->set_pattern("%v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return true;
}

std::string FormatLogLine(LogFormat format, std::string_view level, std::string_view message,
                          LogFields fields) {
  if (format == LogFormat::kJson) {
    nlohmann::ordered_json line;
    line["ts"] = Timestamp();
    line["level"] = level;
    line["msg"] = message;
    for (const LogField& field : fields) {
      const std::string key(field.first);
      std::visit(
          [&](const auto& v) {
            // JSON has no NaN or infinity: those stay text.
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, double>) {
              if (!std::isfinite(v)) {
                line[key] = field.second.Text();
                return;
              }
            }
            line[key] = v;
          },
          field.second.value());
    }
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = "ts=" + Timestamp() + " level=" + std::string(level) + " msg=";
  AppendLogfmtValue(out, message);
  for (const auto& [key, value] : fields) {
    out += ' ';
    out += key;
    out += '=';
    AppendLogfmtValue(out, value.Text());
  }
  return out;
}

void Log(spdlog::level::level_enum level, std::string_view message, LogFields fields) {
  auto logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  logger->log(level, "{}", FormatLogLine(g_format.load(), LevelName(level), message, fields));
}

}  // namespace virtscale
