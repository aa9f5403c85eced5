#include "agent/check_config.h"

#include "agent/config.h"
#include "agent/web_config.h"

namespace virtscale {

int CheckConfigCommand(const std::string& file, bool strict, std::ostream& out) {
  out << "Checking " << file << "\n";
  Diagnostics diags;
  auto config = LoadAgentConfig(file, diags);
  if (config && !config->web.config_file.empty()) LoadWebConfig(config->web.config_file, diags);
  for (const auto& d : diags.list()) out << d.ToString() << "\n";
  const std::string warnings =
      diags.warnings() == 0 ? "" : ", " + std::to_string(diags.warnings()) + " warning(s)";
  if (!diags.ok() || (strict && diags.warnings() > 0)) {
    out << "  FAILED: " << diags.errors() << " problem(s)" << warnings
        << (diags.ok() ? " (--strict)" : "") << "\n";
    return 1;
  }
  out << "  SUCCESS: " << config->rules.groups.size() << " scaling group(s), "
      << config->sources.size() << " source(s), " << config->rule_files.size()
      << " rule file pattern(s)" << warnings << "\n";
  return 0;
}

}  // namespace virtscale
