#include "agent/check_config.h"

#include "agent/config.h"
#include "agent/web_config.h"

namespace virtscale {

int CheckConfigCommand(const std::string& file, std::ostream& out) {
  out << "Checking " << file << "\n";
  Diagnostics diags;
  auto config = LoadAgentConfig(file, diags);
  if (config && !config->web.config_file.empty()) LoadWebConfig(config->web.config_file, diags);
  if (!diags.ok()) {
    for (const auto& d : diags.list()) out << d.ToString() << "\n";
    out << "  FAILED: " << diags.list().size() << " problem(s)\n";
    return 1;
  }
  out << "  SUCCESS: " << config->rules.groups.size() << " scaling group(s), "
      << config->sources.size() << " source(s), " << config->rule_files.size()
      << " rule file pattern(s)\n";
  return 0;
}

}  // namespace virtscale
