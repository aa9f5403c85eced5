#include "agent/decisions_query.h"

#include <fmt/format.h>

#include "common/rfc3339.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

// The value as an error message may quote it: bounded, valid UTF-8.
std::string Quoted(const std::string& value) { return "\"" + BoundedUtf8(value, 64) + "\""; }

bool ParseLimit(const std::string& text, size_t& out) {
  if (text.empty() || text.size() > 9) return false;  // nine digits cannot overflow
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  if (v < 1 || v > kDecisionLimitMax) return false;
  out = v;
  return true;
}

}  // namespace

bool ParseDecisionQuery(const std::multimap<std::string, std::string>& params,
                        autoscale::DecisionFilter& out, std::string& error) {
  autoscale::DecisionFilter f;
  f.limit = kDecisionLimitDefault;
  for (const char* single : {"since", "limit", "changes"}) {
    if (params.count(single) > 1) {
      error = fmt::format("{}: given {} times; give it once", single, params.count(single));
      return false;
    }
  }
  for (const auto& [key, value] : params) {
    if (key == "group") {
      if (value.empty()) {
        error = "group: empty; give a group name";
        return false;
      }
      f.groups.insert(value);
    } else if (key == "outcome") {
      const auto outcome = autoscale::OutcomeFromName(value);
      if (!outcome) {
        error = fmt::format("outcome: unknown outcome {}; one of none, scale_up, scale_down, held",
                            Quoted(value));
        return false;
      }
      f.outcomes.insert(*outcome);
    } else if (key == "since") {
      f.since = ParseRfc3339(value);
      if (!f.since) {
        error = fmt::format(
            "since: {} is not an RFC 3339 time like 2026-12-01T10:00:00Z or "
            "2026-12-01T11:00:00.5+01:00",
            Quoted(value));
        return false;
      }
    } else if (key == "limit") {
      if (!ParseLimit(value, f.limit)) {
        error = fmt::format("limit: must be an integer from 1 to {}, got {}", kDecisionLimitMax,
                            Quoted(value));
        return false;
      }
    } else if (key == "changes") {
      if (value != "true" && value != "false") {
        error = fmt::format("changes: must be true or false, got {}", Quoted(value));
        return false;
      }
      f.changes_only = value == "true";
    }
  }
  out = std::move(f);
  return true;
}

}  // namespace virtscale
