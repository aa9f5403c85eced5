#include "autoscale/notification_target.h"

#include "common/utf8.h"

namespace virtscale::autoscale {

namespace {

constexpr struct {
  NotificationEvent event;
  const char* name;
} kEvents[] = {
    {NotificationEvent::kScaleUp, "scale_up"}, {NotificationEvent::kScaleDown, "scale_down"},
    {NotificationEvent::kReplace, "replace"},  {NotificationEvent::kFailed, "failed"},
    {NotificationEvent::kPaused, "paused"},    {NotificationEvent::kResumed, "resumed"},
};

std::string EventList() {
  std::string out;
  for (const auto& e : kEvents) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

std::optional<NotificationTarget> DecodeTarget(const YAML::Node& node, const std::string& path,
                                               Diagnostics& diags) {
  const size_t errors = diags.errors();
  MapReader r(node, path, diags);
  if (!r.valid()) return std::nullopt;
  NotificationTarget t;
  for (const auto& e : kEvents) t.events.insert(e.event);
  bool ok = true;
  std::string url;
  if (r.Require("url") && r.Read("url", url)) {
    std::string why;
    auto parsed = ParseHttpUrl(url, why);
    if (parsed) {
      t.url = std::move(*parsed);
    } else {
      r.Error("url", "\"" + BoundedUtf8(url, 80) + "\" is not an http(s) URL: " + why);
      ok = false;
    }
  } else {
    ok = false;
  }
  std::vector<std::string> events;
  if (r.ReadStringList("events", events)) {
    t.events.clear();
    for (const std::string& name : events) {
      auto e = NotificationEventFromName(name);
      if (e) {
        t.events.insert(*e);
      } else {
        r.Error("events",
                "unknown event \"" + BoundedUtf8(name, 40) + "\" (expected " + EventList() + ")");
        ok = false;
      }
    }
    if (events.empty()) {
      r.Error("events", "must not be empty (omit it for every event)");
      ok = false;
    }
  } else if (r.Has("events")) {
    ok = false;
  }
  if (r.ReadDuration("timeout", t.timeout)) {
    const Duration low = std::chrono::milliseconds(100), high = std::chrono::seconds(60);
    if (t.timeout < low || t.timeout > high) {
      r.Error("timeout", "must be between " + FormatDuration(low) + " and " + FormatDuration(high));
      ok = false;
    }
  } else if (r.Has("timeout")) {
    ok = false;
  }
  r.Finish();
  // Finish's unknown keys count too: a typo must not pass as a working target.
  return ok && diags.errors() == errors ? std::optional(std::move(t)) : std::nullopt;
}

}  // namespace

const char* NotificationEventName(NotificationEvent e) {
  for (const auto& k : kEvents)
    if (k.event == e) return k.name;
  return "unknown";
}

std::optional<NotificationEvent> NotificationEventFromName(std::string_view name) {
  for (const auto& k : kEvents)
    if (name == k.name) return k.event;
  return std::nullopt;
}

const std::vector<NotificationEvent>& AllNotificationEvents() {
  static const std::vector<NotificationEvent> all = [] {
    std::vector<NotificationEvent> v;
    for (const auto& k : kEvents) v.push_back(k.event);
    return v;
  }();
  return all;
}

std::string NotificationTarget::Label() const {
  return url.SchemeHostPort() + url.path.substr(0, url.path.find('?'));
}

std::vector<NotificationTarget> DecodeNotifications(const YAML::Node& node, const std::string& path,
                                                    Diagnostics& diags) {
  std::vector<NotificationTarget> out;
  if (!node.IsDefined() || node.IsNull()) return out;
  if (!node.IsSequence()) {
    diags.Error(node, path + ": expected a list of {url, events, timeout}");
    return out;
  }
  if (node.size() > kMaxNotificationTargets) {
    diags.Error(node, path + ": at most " + std::to_string(kMaxNotificationTargets) +
                          " targets, got " + std::to_string(node.size()));
    return out;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    auto t = DecodeTarget(node[i], path + "[" + std::to_string(i) + "]", diags);
    if (t) out.push_back(std::move(*t));
  }
  return out;
}

}  // namespace virtscale::autoscale
