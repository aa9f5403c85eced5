#pragma once
// The running agent: wires the libvirt connection, sampler, sources, autoscale
// engine and HTTP server together, and owns reload and shutdown.
//
//   AgentFlags flags;  // from the command line
//   return RunAgent(flags);  // blocks until SIGINT/SIGTERM; returns the exit code
#include <optional>
#include <string>

namespace virtscale {

struct AgentFlags {
  std::string config_file;                    // empty: built-in defaults
  std::optional<std::string> libvirt_uri;     // overrides libvirt.uri
  std::optional<std::string> listen_address;  // overrides web.listen_address
  std::optional<std::string> web_config_file;
  bool enable_lifecycle = false;
  bool dry_run = false;
  std::string log_level = "info";
  std::string log_format = "logfmt";
};

int RunAgent(const AgentFlags& flags);

}  // namespace virtscale
