#pragma once
// Where the autoscaler's notifications go (`notifications:` at the top of
// virtscale.yml and in a rule file's group; DESIGN.md "Lifecycle keys"), and
// the one decoder both places use.
//
//   notifications:
//     - url: http://127.0.0.1:9000/hook
//       events: [scale_up, failed]     # default: every event
//       timeout: 5s                    # per attempt, 100ms to 60s
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "common/http_url.h"
#include "common/yaml_reader.h"

namespace virtscale::autoscale {

enum class NotificationEvent { kScaleUp, kScaleDown, kReplace, kFailed, kPaused, kResumed };
// "scale_up", "scale_down", "replace", "failed", "paused", "resumed".
const char* NotificationEventName(NotificationEvent e);
std::optional<NotificationEvent> NotificationEventFromName(std::string_view name);
const std::vector<NotificationEvent>& AllNotificationEvents();

inline constexpr size_t kMaxNotificationTargets = 16;  // per list

struct NotificationTarget {
  HttpUrl url;  // http(s), no credentials or fragment (ParseHttpUrl)
  std::set<NotificationEvent> events;
  Duration timeout{std::chrono::seconds(5)};
  // The `url` label of the notification metrics: the URL without its query,
  // which may carry a token.
  std::string Label() const;
  bool operator==(const NotificationTarget&) const = default;
};

// Decodes the list at `node` (absent or null: empty); `path` names it in
// messages ("notifications", "groups[0].notifications"). Problems go to
// `diags` as FILE:LINE: path[i].key: message.
std::vector<NotificationTarget> DecodeNotifications(const YAML::Node& node, const std::string& path,
                                                    Diagnostics& diags);

}  // namespace virtscale::autoscale
