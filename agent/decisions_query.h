#pragma once
// The query parameters of /api/v1/decisions, decoded into a DecisionFilter.
// Independent of the HTTP transport: it takes the URL-decoded parameters.
//
//   group=G        only group G (repeatable: any of them)
//   outcome=O      none | scale_up | scale_down | held (repeatable: any of them)
//   since=T        records at or after RFC 3339 time T (2026-12-01T10:00:00Z)
//   changes=true   only records that changed something (Decision::IsChange)
//   limit=N        at most N records, 1..10000, default 100
//
// A bad value is an error naming the parameter, for a 400; parameters it does
// not know are ignored, as Prometheus' API does.
//
//   autoscale::DecisionFilter filter;
//   std::string error;
//   if (!ParseDecisionQuery(req.params, filter, error)) return BadRequest(error);
#include <map>
#include <string>

#include "autoscale/decision.h"

namespace virtscale {

inline constexpr size_t kDecisionLimitDefault = 100;
inline constexpr size_t kDecisionLimitMax = 10000;

[[nodiscard]] bool ParseDecisionQuery(const std::multimap<std::string, std::string>& params,
                                      autoscale::DecisionFilter& out, std::string& error);

}  // namespace virtscale
