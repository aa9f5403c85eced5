#pragma once
// Structured one-line logs on stderr (journald captures them), as logfmt or JSON.
//
//   LogInfo("scale action", {{"group", "web"}, {"direction", "up"}, {"result", "ok"}});
//   -> ts=2026-11-26T22:10:01.123Z level=info msg="scale action" group=web direction=up result=ok
#include <spdlog/spdlog.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace virtscale {

enum class LogFormat { kLogfmt, kJson };

using LogField = std::pair<std::string_view, std::string>;
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
