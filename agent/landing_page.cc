#include "agent/landing_page.h"

#include "common/utf8.h"
#include "common/xml_escape.h"

namespace virtscale {
namespace {

std::string Cell(const nlohmann::json& value) {
  if (value.is_null()) return "";
  return XmlEscape(value.is_string()
                       ? ValidUtf8(value.get<std::string>())
                       : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

std::string RenderLandingPage(const std::string& version, const std::string& uri,
                              const SnapshotPtr& snapshot, const nlohmann::json& groups,
                              const nlohmann::json& decisions) {
  std::string html =
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>virtscale</title>"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
      "<h1>virtscale</h1><p>Version " +
      XmlEscape(version) + " &middot; libvirt <code>" + XmlEscape(uri) + "</code>";
  if (snapshot) {
    html += " &middot; libvirt " + std::string(snapshot->libvirt_up ? "up" : "<b>down</b>") +
            " &middot; " + std::to_string(snapshot->domains.size()) + " domains";
  } else {
    html += " &middot; no sample yet";
  }
  html +=
      "</p><ul><li><a href=\"metrics\">Metrics</a></li>"
      "<li><a href=\"api/v1/groups\">Groups (JSON)</a></li>"
      "<li><a href=\"api/v1/decisions\">Decisions (JSON)</a></li>"
      "<li><a href=\"-/healthy\">Health</a></li><li><a href=\"-/ready\">Readiness</a></li></ul>";

  html += "<h2>Groups</h2>";
  if (!groups.is_array() || groups.empty()) {
    html += "<p>No scaling groups configured.</p>";
  } else {
    html +=
        "<table><tr><th>Group</th><th>Running</th><th>Stopped</th><th>Active</th><th>Desired</th>"
        "<th>Min</th><th>Max</th><th>Members</th><th>Last decision</th></tr>";
    for (const auto& g : groups) {
      std::string members;
      if (g.contains("members") && g["members"].is_array())
        for (const auto& m : g["members"]) {
          if (!members.empty()) members += ", ";
          members += Cell(m.is_object() && m.contains("name") ? m["name"] : m);
          // The state and ownership say what virtscale may do with the member.
          if (m.is_object() && m.contains("state")) {
            members += " (" + Cell(m["state"]);
            if (m.value("owned", false)) members += ", owned";
            members += ")";
          }
        }
      html += "<tr><td>" + Cell(g.value("name", nlohmann::json())) + "</td><td>" +
              Cell(g.value("running", nlohmann::json())) + "</td><td>" +
              Cell(g.value("stopped", nlohmann::json())) + "</td><td>" +
              Cell(g.value("active", nlohmann::json())) + "</td><td>" +
              Cell(g.value("desired", nlohmann::json())) + "</td><td>" +
              Cell(g.value("min", nlohmann::json())) + "</td><td>" +
              Cell(g.value("max", nlohmann::json())) + "</td><td>" + members + "</td><td>" +
              Cell(g.value("last_outcome", nlohmann::json())) + "</td></tr>";
    }
    html += "</table>";
  }

  html += "<h2>Recent decisions</h2>";
  if (!decisions.is_array() || decisions.empty()) {
    html += "<p>None yet.</p>";
  } else {
    html += "<table><tr><th>Time</th><th>Group</th><th>Outcome</th><th>Reason</th></tr>";
    for (const auto& d : decisions) {
      html += "<tr><td>" + Cell(d.value("time", nlohmann::json())) + "</td><td>" +
              Cell(d.value("group", nlohmann::json())) + "</td><td>" +
              Cell(d.value("outcome", nlohmann::json())) + "</td><td>" +
              Cell(d.value("reason", nlohmann::json())) + "</td></tr>";
    }
    html += "</table>";
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace virtscale
