// virtscale: libvirt metrics for Prometheus, and a rule-driven VM autoscaler.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "agent/agent.h"
#include "agent/check_config.h"
#include "agent/simulate_command.h"
#include "agent/test_rules_command.h"
#include "version.h"

int main(int argc, char** argv) {
  // Fewer arenas and a fixed mmap threshold: the per-sample render frees
  // multi-MB buffers that glibc would otherwise keep (halves RSS at 1000 domains).
  // The agent returns freed heap itself after each sample (malloc_trim), so
  // free() need not: a scrape's few hundred KB of zlib state stays mapped
  // instead of being faulted in again at every gzip scrape.
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
  virtscale::AgentFlags flags;
  CLI::App app{
      "virtscale: samples libvirt domain stats into Prometheus metrics and scales groups of VMs "
      "by YAML rules."};
  app.set_version_flag("--version", std::string("virtscale ") + VIRTSCALE_VERSION);
  app.add_option("--config.file", flags.config_file,
                 "Config file (virtscale.yml). Without it the agent runs on defaults.");
  app.add_option("--libvirt.uri", flags.libvirt_uri,
                 "libvirt URI; overrides libvirt.uri (default qemu:///system).");
  app.add_option("--web.listen-address", flags.listen_address,
                 "Address to listen on; overrides web.listen_address (default :9177).");
  app.add_option("--web.config.file", flags.web_config_file,
                 "Exporter-toolkit web config for TLS and basic auth.");
  app.add_flag("--web.enable-lifecycle", flags.enable_lifecycle,
               "Enable POST /-/reload and the pause, resume, protect and unprotect endpoints.");
  app.add_flag("--dry-run", flags.dry_run,
               "Compute, log and export scaling decisions without changing any VM.");
  app.add_option("--log.level", flags.log_level, "debug, info, warn or error.")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.add_option("--log.format", flags.log_format, "logfmt or json.")
      ->check(CLI::IsMember({"logfmt", "json"}));

  auto* check = app.add_subcommand("check", "Validate files without starting the agent.");
  check->require_subcommand(1);
  auto* check_config = check->add_subcommand(
      "config", "Validate a config file with its rule files and templates; exit 0 when clean.");
  std::string check_file;
  check_config->add_option("file", check_file, "Config file to check.")->required();
  bool check_strict = false;
  check_config->add_flag("--strict", check_strict, "Exit 1 on warnings too.");

  auto test_rules = virtscale::AddTestRulesCommand(app);
  auto simulate = virtscale::AddSimulateCommand(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, as promtool's do.
    return app.exit(e) == 0 ? 0 : 2;
  }
  // Decoders report bad input as FILE:LINE errors; this is the last guard for
  // anything a library still throws, so no input ends in an abort.
  try {
    if (check_config->parsed())
      return virtscale::CheckConfigCommand(check_file, check_strict, std::cout);
    if (auto code = test_rules()) return *code;
    if (auto code = simulate()) return *code;
    return virtscale::RunAgent(flags);
  } catch (const std::exception& e) {
    std::cerr << "virtscale: " << e.what() << "\n";
    return 1;
  }
}
