#pragma once
// Structured one-line logs on stderr (journald captures them), as logfmt or JSON.
//
//   LogInfo("scale action", {{"group", "web"}, {"direction", "up"}, {"result", "ok"}});
//   -> ts=2026-11-26T22:10:01.123Z level=info msg="scale action" group=web direction=up result=ok
#include <spdlog/spdlog.h>

#include <concepts>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace virtscale {

enum class LogFormat { kLogfmt, kJson };

// A field's value keeps its type: JSON logs write numbers and booleans as
// such, logfmt writes them bare.
class LogValue {
 public:
  LogValue(std::string text) : v_(std::move(text)) {}         // NOLINT: implicit by design
  LogValue(std::string_view text) : v_(std::string(text)) {}  // NOLINT
  LogValue(const char* text) : v_(std::string(text)) {}       // NOLINT: not bool
  LogValue(bool b) : v_(b) {}                                 // NOLINT
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) LogValue(T n)
      : v_(static_cast<int64_t>(n)) {}  // NOLINT
  LogValue(double x) : v_(x) {}         // NOLINT

  const std::variant<std::string, int64_t, double, bool>& value() const { return v_; }
  std::string Text() const;  // as logfmt writes it

 private:
  std::variant<std::string, int64_t, double, bool> v_;
};

using LogField = std::pair<std::string_view, LogValue>;
using LogFields = std::initializer_list<LogField>;

// Accepts debug, info, warn, error. Returns false for an unknown level or format.
bool SetupLogging(std::string_view level, std::string_view format);

// Formats one line; exposed for tests.
std::string FormatLogLine(LogFormat format, std::string_view level, std::string_view message,
                          LogFields fields);

void Log(spdlog::level::level_enum level, std::string_view message, LogFields fields = {});
inline void LogDebug(std::string_view m, LogFields f = {}) { Log(spdlog::level::debug, m, f); }
inline void LogInfo(std::string_view m, LogFields f = {}) { Log(spdlog::level::info, m, f); }
inline void LogWarn(std::string_view m, LogFields f = {}) { Log(spdlog::level::warn, m, f); }
inline void LogError(std::string_view m, LogFields f = {}) { Log(spdlog::level::err, m, f); }

}  // namespace virtscale
