#include "autoscale/decision.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace virtscale::autoscale {

const char* ConditionStateName(ConditionState s) {
  switch (s) {
    case ConditionState::kInactive:
      return "inactive";
    case ConditionState::kPending:
      return "pending";
    case ConditionState::kFiring:
      return "firing";
  }
  return "inactive";
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kNone:
      return "none";
    case Outcome::kScaleUp:
      return "scale_up";
    case Outcome::kScaleDown:
      return "scale_down";
    case Outcome::kHeld:
      return "held";
    case Outcome::kPaused:
      return "paused";
    case Outcome::kResumed:
      return "resumed";
  }
  return "none";
}

std::optional<Outcome> OutcomeFromName(std::string_view name) {
  for (Outcome o : {Outcome::kNone, Outcome::kScaleUp, Outcome::kScaleDown, Outcome::kHeld,
                    Outcome::kPaused, Outcome::kResumed})
    if (name == OutcomeName(o)) return o;
  return std::nullopt;
}

const char* HeldByName(HeldBy h) {
  switch (h) {
    case HeldBy::kNone:
      return "";
    case HeldBy::kNoSnapshot:
      return "no_snapshot";
    case HeldBy::kMissingData:
      return "missing_data";
    case HeldBy::kCooldown:
      return "cooldown";
    case HeldBy::kBoundMin:
      return "bound_min";
    case HeldBy::kBoundMax:
      return "bound_max";
    case HeldBy::kDryRun:
      return "dry_run";
    case HeldBy::kInFlight:
      return "action_in_flight";
    case HeldBy::kAwaitingSnapshot:
      return "awaiting_snapshot";
    case HeldBy::kBackoff:
      return "backoff";
    case HeldBy::kNoCandidate:
      return "no_candidate";
    case HeldBy::kStaleSnapshot:
      return "stale_snapshot";
    case HeldBy::kRateLimit:
      return "rate_limit";
    case HeldBy::kPaused:
      return "paused";
    case HeldBy::kStabilization:
      return "stabilization_window";
    case HeldBy::kFollower:
      return "follower";
  }
  return "";
}

const char* ActionResultName(ActionResult r) {
  switch (r) {
    case ActionResult::kPending:
      return "pending";
    case ActionResult::kOk:
      return "ok";
    case ActionResult::kError:
      return "error";
    case ActionResult::kDryRun:
      return "dry_run";
    case ActionResult::kCancelled:
      return "cancelled";
  }
  return "pending";
}

const char* DecisionResultName(DecisionResult r) {
  switch (r) {
    case DecisionResult::kNone:
      return "";
    case DecisionResult::kPending:
      return "pending";
    case DecisionResult::kOk:
      return "ok";
    case DecisionResult::kError:
      return "error";
    case DecisionResult::kPartial:
      return "partial";
    case DecisionResult::kDryRun:
      return "dry_run";
    case DecisionResult::kCancelled:
      return "cancelled";
  }
  return "";
}

const char* MemberStateName(MemberState s) {
  switch (s) {
    case MemberState::kRunning:
      return "running";
    case MemberState::kPaused:
      return "paused";
    case MemberState::kStopped:
      return "stopped";
    case MemberState::kUnhealthy:
      return "unhealthy";
    case MemberState::kOther:
      return "other";
  }
  return "other";
}

std::string FormatTime(TimePoint t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

ScheduleInForce ScheduleInForce::Of(const ActiveSchedule& window) {
  const Schedule& s = *window.schedule;
  return {s.line, s.cron_text, s.timezone, s.min, s.max, window.start, window.end};
}

nlohmann::json ForecastReport::ToJson() const {
  using nlohmann::json;
  json j{{"mode", ForecastModeName(mode)},
         {"source", source},
         {"horizon", FormatDuration(horizon)},
         {"members", members ? json(*members) : json(nullptr)},
         {"applied", applied}};
  if (!model.empty()) j["model"] = model;
  if (!unavailable.empty()) j["unavailable"] = unavailable;
  return j;
}

nlohmann::json ScheduleInForce::ToJson() const {
  using nlohmann::json;
  auto bound = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
  return {{"line", line},
          {"cron", cron},
          {"timezone", timezone},
          {"min", bound(min)},
          {"max", bound(max)},
          {"started_at", FormatTime(started_at)},
          {"ends_at", FormatTime(ends_at)}};
}

nlohmann::json Decision::ToJson() const {
  using nlohmann::json;
  json j;
  j["id"] = id;
  j["group"] = group;
  j["time"] = FormatTime(time);
  j["snapshot_time"] = snapshot_time ? json(FormatTime(*snapshot_time)) : json(nullptr);
  json members = json::object();
  json by_state = json::object();
  for (int i = 0; i < kMemberStates; ++i)
    members[MemberStateName(static_cast<MemberState>(i))] = by_state_count[i];
  for (const auto& [name, state] : member_states) by_state[MemberStateName(state)].push_back(name);
  members["active"] = active;
  members["by_state"] = std::move(by_state);
  if (!health_failures.empty()) {
    json failing = json::object();
    for (const auto& [name, why] : health_failures) failing[name] = why;
    members["health_failures"] = std::move(failing);
  }
  j["members"] = std::move(members);
  j["min"] = min;
  j["max"] = max;
  j["schedule"] = schedule ? schedule->ToJson() : json(nullptr);
  j["desired"] = desired;
  json values = json::object();
  json missing = json::object();
  for (const MetricValue& m : metrics) {
    if (m.value) {
      values[m.key] = *m.value;
    } else {
      values[m.key] = nullptr;
      missing[m.key] = m.missing_reason;
    }
  }
  j["metrics"] = values;
  if (!missing.empty()) j["missing"] = missing;
  json conds = json::array();
  for (const ConditionReport& c : conditions) {
    json cj{{"direction", DirectionName(c.direction)},
            {"index", c.index},
            {"condition", c.description},
            {"metric", c.metric_key},
            {"threshold", c.threshold},
            {"state", ConditionStateName(c.state)},
            {"held_seconds", Seconds(c.held_for)}};
    cj["value"] = c.value ? json(*c.value) : json(nullptr);
    if (c.missing) cj["missing"] = true;
    conds.push_back(std::move(cj));
  }
  j["conditions"] = conds;
  j["outcome"] = OutcomeName(outcome);
  j["direction"] = direction ? json(DirectionName(*direction)) : json(nullptr);
  if (held_by != HeldBy::kNone) j["held_by"] = HeldByName(held_by);
  j["reason"] = reason;
  if (!replacing.empty()) j["replacing"] = replacing;
  if (stabilization) {
    const StabilizationReport& s = *stabilization;
    json history = json::array();
    for (const auto& [at, members] : s.history)
      history.push_back({{"at", FormatTime(at)}, {"members", members}});
    j["stabilization"] = {
        {"direction", DirectionName(s.direction)}, {"window", FormatDuration(s.window)},
        {"recommendation", s.recommendation},      {"stabilized", s.stabilized},
        {"history", std::move(history)},           {"history_omitted", s.history_omitted}};
  }
  if (forecast) j["forecast"] = forecast->ToJson();
  if (refresh) {
    j["refresh"] = {{"due", refresh->due},
                    {"max_unavailable", refresh->max_unavailable},
                    {"without_hash", refresh->without_hash},
                    {"template_hash", refresh->template_hash},
                    {"replacing", replacing.empty() ? json(nullptr) : json(replacing)}};
  }
  json acts = json::array();
  for (const ActionRecord& a : actions) {
    json aj{{"kind", OperationKindName(a.operation.kind)},
            {"domain", a.domain.empty() ? a.operation.domain : a.domain},
            {"result", ActionResultName(a.result)}};
    if (!a.error.empty()) aj["error"] = a.error;
    if (!a.detail.empty()) aj["detail"] = a.detail;
    if (a.result == ActionResult::kOk || a.result == ActionResult::kError)
      aj["duration_seconds"] = a.duration_seconds;
    acts.push_back(std::move(aj));
  }
  j["actions"] = acts;
  j["result"] = DecisionResultName(result);
  return j;
}

DecisionLog::DecisionLog(size_t changes, size_t evaluations)
    : changes_{std::max<size_t>(changes, 1), {}},
      evaluations_{std::max<size_t>(evaluations, 1), {}} {}

uint64_t DecisionLog::Add(Decision d) {
  d.id = next_id_++;
  Ring& r = d.IsChange() ? changes_ : evaluations_;
  r.ring.push_back(std::move(d));
  while (r.ring.size() > r.capacity) r.ring.pop_front();
  return r.ring.back().id;
}

Decision* DecisionLog::Find(uint64_t id) {
  for (Ring* r : {&changes_, &evaluations_}) {
    auto it = std::lower_bound(r->ring.begin(), r->ring.end(), id,
                               [](const Decision& d, uint64_t want) { return d.id < want; });
    if (it != r->ring.end() && it->id == id) return &*it;
  }
  return nullptr;
}

nlohmann::json DecisionLog::Json(const DecisionFilter& f) const {
  auto wanted = [&f](const Decision& d) {
    return (f.groups.empty() || f.groups.contains(d.group)) &&
           (f.outcomes.empty() || f.outcomes.contains(d.outcome)) &&
           (!f.since || d.time >= *f.since);
  };
  nlohmann::json out = nlohmann::json::array();
  auto c = changes_.ring.rbegin();
  auto e = evaluations_.ring.rbegin();
  const auto c_end = changes_.ring.rend();
  const auto e_end = f.changes_only ? e : evaluations_.ring.rend();
  // Merge by id, newest first; the wall clock may step, ids do not.
  while (out.size() < f.limit && (c != c_end || e != e_end)) {
    const bool take_change = e == e_end || (c != c_end && c->id > e->id);
    const Decision& d = take_change ? *c++ : *e++;
    if (wanted(d)) out.push_back(d.ToJson());
  }
  return out;
}

}  // namespace virtscale::autoscale
