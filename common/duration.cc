#include "common/duration.h"

#include <array>
#include <cctype>
#include <cstdint>

namespace virtscale {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t millis;
};

// Ordered largest first; "ms" precedes "m" so the longer suffix wins.
constexpr std::array<Unit, 7> kUnits{{{"y", 365LL * 24 * 3600 * 1000},
                                      {"w", 7LL * 24 * 3600 * 1000},
                                      {"d", 24LL * 3600 * 1000},
                                      {"h", 3600LL * 1000},
                                      {"ms", 1},
                                      {"m", 60LL * 1000},
                                      {"s", 1000}}};

// Rank used to enforce "largest unit first"; ms is the smallest.
int Rank(std::string_view suffix) {
  static constexpr std::array<std::string_view, 7> kOrder{"y", "w", "d", "h", "m", "s", "ms"};
  for (size_t i = 0; i < kOrder.size(); ++i)
    if (kOrder[i] == suffix) return static_cast<int>(i);
  return -1;
}

}  // namespace

std::optional<Duration> ParseDuration(std::string_view text, std::string* why) {
  const auto invalid = [&]() -> std::optional<Duration> {
    if (why)
      *why = "invalid duration \"" + std::string(text) + "\" (want e.g. 500ms, 5s, 1m, 1h30m)";
    return std::nullopt;
  };
  const auto too_long = [&]() -> std::optional<Duration> {
    if (why)
      *why = "duration \"" + std::string(text) + "\" is longer than the maximum " +
             std::string(kMaxDurationText);
    return std::nullopt;
  };
  if (text.empty()) return invalid();
  if (text == "0") return Duration{0};
  const int64_t max_ms = kMaxDuration.count();
  bool too_large = false;  // keep checking the syntax: a typo is reported as such
  int64_t total = 0;
  int last_rank = -1;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return invalid();
    int64_t number = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      // Saturates past the maximum, so no digit count can overflow.
      if (number <= max_ms) number = number * 10 + (text[i] - '0');
      ++i;
    }
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (text.substr(i, u.suffix.size()) == u.suffix) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return invalid();
    int rank = Rank(unit->suffix);
    if (rank <= last_rank) return invalid();
    last_rank = rank;
    i += unit->suffix.size();
    // total <= max_ms here, so the right-hand side never overflows.
    if (too_large || number > (max_ms - total) / unit->millis) {
      too_large = true;
    } else {
      total += number * unit->millis;
    }
  }
  if (too_large) return too_long();
  return Duration{total};
}

std::string FormatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  static constexpr std::array<Unit, 6> kFormatUnits{{{"d", 24LL * 3600 * 1000},
                                                     {"h", 3600LL * 1000},
                                                     {"m", 60LL * 1000},
                                                     {"s", 1000},
                                                     {"ms", 1},
                                                     {"", 0}}};
  for (const Unit& u : kFormatUnits) {
    if (u.millis == 0) break;
    if (ms >= u.millis) {
      out += std::to_string(ms / u.millis);
      out += u.suffix;
      ms %= u.millis;
    }
  }
  return out;
}

}  // namespace virtscale
