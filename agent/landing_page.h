#pragma once
// The HTML page at "/": what an operator checks first. Links to every
// endpoint; the host; a dry-run banner; the last reload's result; each group
// with its bounds and latest evaluation; every member with its state; every
// source with its value, age and health; the recent changes. Plain
// server-side HTML with escaped text, no scripts; it reloads itself every
// kLandingPageRefreshSeconds through <meta http-equiv="refresh">.
//
// Element ids and classes tests (and scrapers) may rely on:
//   #dry-run-banner                 only in dry run (--dry-run or a group's dry_run)
//   #reload-status[data-result]     "start", "success" or "failure"
//   tr.group[data-group][data-paused]   one per group; data-paused "true" or "false"
//   tr.member[data-state][data-protected] one per member; td.state holds the state
//   tr.source[data-health]          one per source (SourceHealthName)
//   tr.change                       one per recent change
//
//   LandingPageData page;
//   page.groups = engine.GroupsJson();
//   page.changes = engine.DecisionsJson(recent_changes_filter);
//   res.set_content(RenderLandingPage(page), "text/html; charset=utf-8");
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collectors/snapshot.h"
#include "collectors/sources/reading.h"
#include "common/clock.h"

namespace virtscale {

inline constexpr int kLandingPageRefreshSeconds = 5;

// The running config and the last reload attempt.
struct ReloadStatus {
  std::string config_file;  // empty: defaults, nothing to reload
  WallTime loaded_at{};     // when the running config was loaded
  bool attempted = false;   // a reload was tried since start
  bool ok = true;           // the last attempt succeeded
  WallTime attempted_at{};
  std::string error;  // why the last attempt failed
};

struct LandingPageData {
  std::string version;
  std::string uri;
  std::vector<std::string> stat_groups;              // libvirt.stats in force: "state", "cpu", ...
  std::vector<std::string> metadata_labels;          // libvirt.metadata_labels names in force
  SnapshotPtr snapshot;                              // null before the first sample
  bool dry_run = false;                              // --dry-run
  nlohmann::json groups = nlohmann::json::array();   // Engine::GroupsJson()
  nlohmann::json changes = nlohmann::json::array();  // decision records, newest first
  SourceReadings sources;
  nlohmann::json hosts = nlohmann::json::array();  // /api/v1/hosts: the fleet's hosts (hosts:)
  nlohmann::json leader = {{"enabled", false}};    // /api/v1/leader
  ReloadStatus reload;
  WallTime now{};  // ages are relative to this
};

std::string RenderLandingPage(const LandingPageData& page);

}  // namespace virtscale
