#include "agent/landing_page.h"

#include <fmt/format.h>

#include <chrono>

#include "autoscale/decision.h"
#include "common/utf8.h"
#include "common/xml_escape.h"

namespace virtscale {
namespace {

using nlohmann::json;

// Escaped text of a JSON value from the engine; "" for null or absent.
std::string Cell(const json& value) {
  if (value.is_null()) return "";
  return XmlEscape(value.is_string() ? ValidUtf8(value.get<std::string>())
                                     : value.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string Field(const json& object, const char* key) {
  return object.is_object() && object.contains(key) ? Cell(object[key]) : "";
}

std::string Text(std::string_view s) { return XmlEscape(ValidUtf8(s)); }

std::string Time(WallTime t) { return Text(autoscale::FormatTime(t)); }

// "4s", "3m 20s", "2h 5m", "3d 4h": how long ago, at a glance.
std::string Age(WallTime then, WallTime now) {
  const int64_t s =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - then).count());
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m {}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d {}h", s / 86400, s % 86400 / 3600);
}

constexpr char kStyle[] =
    "body{font-family:sans-serif;margin:1.5em 2em;color:#222}"
    "h1{margin-bottom:0.2em}h2{margin-top:1.4em;font-size:1.2em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
    "vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}"
    "nav a{margin-right:1em}.muted{color:#777}td.time,td.actions{white-space:nowrap}"
    ".banner{background:#fff3cd;border:2px solid #e0a800;padding:0.6em 1em;font-weight:bold}"
    ".ok{color:#17692b}.bad{color:#b00020;font-weight:bold}.warn{color:#9a6100}"
    ".state-running{color:#17692b}.state-stopped{color:#666}.state-paused{color:#9a6100}"
    ".state-unhealthy{color:#b00020;font-weight:bold}.state-other{color:#9a6100}"
    "#reload-status{padding:0.4em 0.8em;border-left:4px solid #17692b}"
    "#reload-status[data-result=failure]{border-left-color:#b00020;background:#fdecee}";

std::string HealthClass(SourceHealth h) {
  switch (h) {
    case SourceHealth::kOk:
      return "ok";
    case SourceHealth::kPending:
      return "muted";
    case SourceHealth::kFailing:
      return "warn";
    case SourceHealth::kStale:
    case SourceHealth::kError:
      return "bad";
  }
  return "";
}

void Header(const LandingPageData& p, std::string& html) {
  html += "<h1>virtscale</h1><p>Version " + Text(p.version) + " &middot; libvirt <code>" +
          Text(p.uri) + "</code>";
  if (!p.stat_groups.empty()) {
    std::string groups;
    for (const std::string& g : p.stat_groups) groups += (groups.empty() ? "" : ", ") + Text(g);
    html += " &middot; stats <code id=\"stat-groups\">" + groups + "</code>";
  }
  if (!p.metadata_labels.empty()) {
    std::string labels;
    for (const std::string& l : p.metadata_labels) labels += (labels.empty() ? "" : ", ") + Text(l);
    html += " &middot; metadata labels <code id=\"metadata-labels\">" + labels + "</code>";
  }
  if (p.snapshot) {
    html += p.snapshot->libvirt_up ? " <span class=\"ok\">up</span>"
                                   : " <span class=\"bad\">down</span>";
    html += fmt::format(" &middot; {} domains &middot; sampled {} ago", p.snapshot->domains.size(),
                        Age(p.snapshot->taken_at, p.now));
  } else {
    html += " &middot; no sample yet";
  }
  html +=
      "</p><nav><a href=\"metrics\">Metrics</a><a href=\"api/v1/groups\">Groups (JSON)</a>"
      "<a href=\"api/v1/decisions\">Decisions (JSON)</a>"
      "<a href=\"api/v1/hosts\">Hosts (JSON)</a><a href=\"api/v1/leader\">Leader (JSON)</a>"
      "<a href=\"api/v1/decisions?changes=true\">Changes (JSON)</a>"
      "<a href=\"-/healthy\">Health</a><a href=\"-/ready\">Readiness</a></nav>";
}

void DryRunBanner(const LandingPageData& p, std::string& html) {
  std::string groups;
  if (!p.dry_run) {
    for (const json& g : p.groups) {
      if (!g.is_object() || !g.value("dry_run", false)) continue;
      groups += (groups.empty() ? "" : ", ") + Field(g, "name");
    }
    if (groups.empty()) return;
  }
  html +=
      "<p class=\"banner\" id=\"dry-run-banner\">Dry run: decisions are computed, logged and "
      "exported; no VM is changed (";
  html += p.dry_run ? "<code>--dry-run</code>: every group" : "<code>dry_run</code>: " + groups;
  html += ").</p>";
}

// This controller's role when several share the groups (leader_election:).
void Leader(const json& leader, std::string& html) {
  if (!leader.is_object() || !leader.value("enabled", false)) return;
  const std::string role = Field(leader, "role");
  html += "<p" + std::string(role == "leader" ? "" : " class=\"banner\"") +
          " id=\"leader\" data-role=\"" + role + "\">Leader election (etcd key <code>" +
          Field(leader, "key") + "</code>, lease " + Field(leader, "lease_ttl") +
          "): this controller (<code>" + Field(leader, "identity") + "</code>) is ";
  if (role == "leader") {
    html += "<span class=\"ok\">the leader</span> and acts.</p>";
    return;
  }
  html += "<span class=\"" + std::string(role == "follower" ? "warn" : "bad") + "\">" + role +
          "</span>: " + Field(leader, "why_not_leader") +
          "; its decisions are a dry run (held_by follower).</p>";
}

void Reload(const ReloadStatus& r, WallTime now, std::string& html) {
  html += "<h2>Configuration</h2>";
  const std::string file = r.config_file.empty() ? std::string("built-in defaults")
                                                 : "<code>" + Text(r.config_file) + "</code>";
  auto at = [now](WallTime t) { return "at " + Time(t) + " (" + Age(t, now) + " ago)"; };
  if (!r.attempted) {
    html += "<p id=\"reload-status\" data-result=\"start\">Running " + file +
            ", loaded when the agent started, " + at(r.loaded_at) + "; no reload since.</p>";
  } else if (r.ok) {
    html +=
        "<p id=\"reload-status\" data-result=\"success\"><span class=\"ok\">Last reload "
        "succeeded</span> " +
        at(r.attempted_at) + ": running " + file + ".</p>";
  } else {
    html +=
        "<div id=\"reload-status\" data-result=\"failure\"><p><span class=\"bad\">Last reload "
        "failed</span> " +
        at(r.attempted_at) + "; still running " + file + " as loaded " + at(r.loaded_at) +
        ".</p><pre class=\"error\">" + XmlEscape(BoundedUtf8(r.error, 8192)) + "</pre></div>";
  }
}

// The latest evaluation of a group, from its last_decision record.
std::string Evaluation(const json& d) {
  if (!d.is_object()) return "<span class=\"muted\">not evaluated yet</span>";
  std::string outcome = Field(d, "outcome");
  if (d.contains("held_by")) outcome += " (" + Field(d, "held_by") + ")";
  const std::string result = Field(d, "result");
  if (!result.empty()) outcome += ": " + result;
  return "<b>" + outcome + "</b> <span class=\"muted\">" + Field(d, "time") + "</span><br>" +
         Field(d, "reason");
}

// "stabilization: down 5m" for the windows that are set, else "".
std::string StabilizationWindows(const json& g) {
  const json w = g.value("stabilization_window", json::object());
  std::string set;
  for (const char* dir : {"up", "down"}) {
    const std::string length = Field(w, dir);
    if (!length.empty() && length != "0s")
      set += std::string(set.empty() ? "" : ", ") + dir + " " + length;
  }
  return set.empty() ? ""
                     : "<br><span class=\"muted stabilization\">stabilization: " + set + "</span>";
}

// "forecast (scale_ahead, 15m from jobs): 5 members" from the last decision, or
// why there is none; "" without forecast:.
std::string ForecastNote(const json& g) {
  const json f = g.value("forecast", json());
  if (!f.is_object()) return "";
  std::string note = "<br><span class=\"muted forecast\">forecast (" + Field(f, "mode") + ", " +
                     Field(f, "horizon") + " from " + Field(f, "source") + ")";
  const json d = g.value("last_decision", json());
  const json df = d.is_object() ? d.value("forecast", json()) : json();
  if (df.is_object() && df.value("members", json()).is_number_integer())
    note += ": " + Field(df, "members") + " members";
  else if (df.is_object())
    note += ": none, " + Field(df, "unavailable");
  return note + "</span>";
}

// The bounds in force (an open schedule window's), with the group's own
// from before /api/v1/groups had effective_*.
std::string Bound(const json& g, const char* effective, const char* own) {
  return g.contains(effective) ? Field(g, effective) : Field(g, own);
}

// The open schedule window and the next one, under the group's name.
std::string ScheduleNote(const json& g) {
  std::string note;
  const json schedule = g.value("schedule", json());
  if (schedule.is_object())
    note += "<br><span class=\"muted schedule\">schedule \"" + Field(schedule, "cron") + "\" (" +
            Field(schedule, "timezone") + ") until " + Field(schedule, "ends_at") + "</span>";
  if (g.contains("next_schedule") && g["next_schedule"].is_string())
    note += "<br><span class=\"muted next-schedule\">next window " + Field(g, "next_schedule") +
            "</span>";
  return note;
}

void Groups(const json& groups, std::string& html) {
  html += "<h2>Groups</h2>";
  if (!groups.is_array() || groups.empty()) {
    html += "<p>No scaling groups configured.</p>";
    return;
  }
  html +=
      "<table id=\"groups\"><tr><th>Group</th><th>Active</th><th>Min</th><th>Max</th>"
      "<th>Desired</th><th>Running</th><th>Stopped</th><th>Latest evaluation</th></tr>";
  for (const json& g : groups) {
    if (!g.is_object()) continue;
    const bool paused = g.value("paused", false);
    html += "<tr class=\"group\" data-group=\"" + Field(g, "name") + "\" data-paused=\"" +
            (paused ? "true" : "false") + "\"><td>" + Field(g, "name") +
            (g.value("dry_run", false) ? " <span class=\"warn\">(dry run)</span>" : "") +
            (paused ? " <span class=\"warn paused\">paused since " + Field(g, "paused_since") +
                          "</span>"
                    : "") +
            "<br><span class=\"muted order\">scale-down order: " + Field(g, "scale_down_order") +
            "</span>" + StabilizationWindows(g) + ScheduleNote(g) + ForecastNote(g) +
            "</td><td class=\"num\">" + Field(g, "active") + "</td><td class=\"num\">" +
            Bound(g, "effective_min", "min") + "</td><td class=\"num\">" +
            Bound(g, "effective_max", "max") + "</td><td class=\"num\">" + Field(g, "desired") +
            "</td><td class=\"num\">" + Field(g, "running") + "</td><td class=\"num\">" +
            Field(g, "stopped") + "</td><td>" + Evaluation(g.value("last_decision", json())) +
            "</td></tr>";
  }
  html += "</table>";
}

void Members(const json& groups, std::string& html) {
  html += "<h2>Members</h2>";
  std::string rows;
  for (const json& g : groups) {
    if (!g.is_object() || !g.contains("members") || !g["members"].is_array()) continue;
    for (const json& m : g["members"]) {
      if (!m.is_object()) continue;
      const std::string state = Field(m, "state");
      // Owned members may be deleted; adopted ones only started and stopped.
      const bool is_protected = m.value("protected", false);
      const bool in_service = m.value("in_service", true);
      rows += "<tr class=\"member\" data-state=\"" + state + "\" data-protected=\"" +
              (is_protected ? "true" : "false") + "\"><td>" + Field(g, "name") + "</td><td>" +
              Field(m, "name") + "</td><td class=\"state state-" + state + "\">" + state +
              (in_service ? ""
                          : "<br><span class=\"warn entering\">not in service: after_scale_up "
                            "hook running</span>") +
              "</td><td>" + Field(m, "domain_state") + "</td><td>" +
              (m.value("owned", false) ? "owned" : "adopted") +
              (m.value("template_current", json(nullptr)) == json(false)
                   ? "<br><span class=\"warn stale\">older template: to be refreshed</span>"
                   : "") +
              "</td><td class=\"protection\">" +
              (is_protected ? "<span class=\"warn\">protected</span>" : "") +
              "</td><td class=\"health\">" + Field(m, "health") +
              (Field(m, "health_output").empty()
                   ? ""
                   : "<br><span class=\"muted\">" + Field(m, "health_output") + "</span>") +
              "</td></tr>";
    }
  }
  if (rows.empty()) {
    html += "<p>No members.</p>";
    return;
  }
  html +=
      "<table id=\"members\"><tr><th>Group</th><th>Member</th><th>State</th>"
      "<th>Domain state</th><th>Ownership</th><th>Scale-down</th><th>Health</th></tr>" +
      rows + "</table>";
}

// "3.0 MiB", "12.5 GiB".
std::string BinaryBytes(double bytes) {
  return bytes >= (1 << 30) ? fmt::format("{:.1f} GiB", bytes / (1 << 30))
                            : fmt::format("{:.1f} MiB", bytes / (1 << 20));
}

// The fleet's hypervisors (hosts:), from /api/v1/hosts; nothing without hosts:.
void Hosts(const json& hosts, std::string& html) {
  if (!hosts.is_array() || hosts.empty()) return;
  html +=
      "<h2>Hosts</h2><table id=\"hosts\"><tr><th>Host</th><th>URI</th><th>State</th>"
      "<th>Free memory</th><th>CPU idle</th><th>Domains</th></tr>";
  for (const json& h : hosts) {
    const bool up = h.value("up", false);
    const json free = h.value("memory_free_bytes", json());
    const json idle = h.value("cpu_idle_ratio", json());
    const json domains = h.value("domains", json());
    html += "<tr class=\"host\" data-up=\"" + std::string(up ? "1" : "0") + "\"><td>" +
            Field(h, "name") + "</td><td><code>" + Field(h, "uri") + "</code></td><td>" +
            (up ? std::string("<span class=\"ok\">up</span>")
                : "<span class=\"bad\">unreachable " + Field(h, "unreachable_for") + "</span>") +
            "</td><td class=\"num\">" +
            (free.is_number() ? BinaryBytes(free.get<double>()) : "&ndash;") +
            "</td><td class=\"num\">" +
            (idle.is_number() ? fmt::format("{:.0f}%", 100 * idle.get<double>()) : "&ndash;") +
            "</td><td class=\"num\">" +
            (domains.is_number() ? std::to_string(domains.get<int64_t>()) : "&ndash;") +
            "</td></tr>";
  }
  html += "</table>";
}

void Sources(const SourceReadings& sources, WallTime now, std::string& html) {
  html += "<h2>Sources</h2>";
  if (sources.empty()) {
    html += "<p>No sources configured.</p>";
    return;
  }
  html +=
      "<table id=\"sources\"><tr><th>Source</th><th>Value</th><th>Last success</th>"
      "<th>Health</th><th>Detail</th></tr>";
  for (const auto& [name, r] : sources) {
    const char* health = SourceHealthName(r.health);
    const bool never = r.last_success == WallTime{};
    html += "<tr class=\"source\" data-health=\"" + std::string(health) + "\"><td>" + Text(name) +
            "</td><td class=\"num\">" + (r.value ? fmt::format("{:g}", *r.value) : "&ndash;") +
            "</td><td>" + (never ? "never" : Age(r.last_success, now) + " ago") +
            "</td><td class=\"health " + HealthClass(r.health) + "\">" + health + "</td><td>" +
            Text(r.error) + "</td></tr>";
  }
  html += "</table>";
}

std::string Actions(const json& d) {
  std::string out;
  if (!d.contains("actions") || !d["actions"].is_array()) return out;
  for (const json& a : d["actions"]) {
    if (!out.empty()) out += "<br>";
    const std::string domain = Field(a, "domain");  // empty: a create not yet made
    out += Field(a, "kind") + " " + (domain.empty() ? "(new)" : domain) + ": " + Field(a, "result");
    if (a.contains("error")) out += " <span class=\"bad\">" + Field(a, "error") + "</span>";
  }
  return out;
}

void Changes(const json& changes, std::string& html) {
  html += "<h2>Recent changes</h2>";
  if (!changes.is_array() || changes.empty()) {
    html += "<p>No changes yet.</p>";
    return;
  }
  html +=
      "<table id=\"changes\"><tr><th>Time</th><th>Group</th><th>Outcome</th><th>Actions</th>"
      "<th>Reason</th></tr>";
  for (const json& d : changes) {
    if (!d.is_object()) continue;
    html += "<tr class=\"change\"><td class=\"time\">" + Field(d, "time") + "</td><td>" +
            Field(d, "group") + "</td><td>" + Field(d, "outcome") + "</td><td class=\"actions\">" +
            Actions(d) + "</td><td>" + Field(d, "reason") + "</td></tr>";
  }
  html += "</table>";
}

}  // namespace

std::string RenderLandingPage(const LandingPageData& p) {
  std::string html = fmt::format(
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"{}\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>virtscale</title><style>{}</style></head><body>",
      kLandingPageRefreshSeconds, kStyle);
  Header(p, html);
  DryRunBanner(p, html);
  Leader(p.leader, html);
  Reload(p.reload, p.now, html);
  Groups(p.groups, html);
  Members(p.groups, html);
  Hosts(p.hosts, html);
  Sources(p.sources, p.now, html);
  Changes(p.changes, html);
  html += fmt::format(
      "<p class=\"muted\">Generated {}; this page reloads every {} s.</p></body></html>\n",
      Time(p.now), kLandingPageRefreshSeconds);
  return html;
}

}  // namespace virtscale
