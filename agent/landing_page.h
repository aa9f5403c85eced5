#pragma once
// The HTML page at "/": links to every endpoint, the host's state, the scaling
// groups and the most recent decisions. Plain server-side HTML, no scripts.
#include <nlohmann/json.hpp>
#include <string>

#include "collectors/snapshot.h"

namespace virtscale {

std::string RenderLandingPage(const std::string& version, const std::string& uri,
                              const SnapshotPtr& snapshot, const nlohmann::json& groups,
                              const nlohmann::json& decisions);

}  // namespace virtscale
