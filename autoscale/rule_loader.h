#pragma once
// Decodes and validates rule files (DESIGN.md "Rules"). Every problem is
// collected as "FILE:LINE: key: message" so `virtscale check config` can print
// them all; a RuleSet is returned either way, but the caller must not use it
// unless `diags.ok()`.
//
//   Diagnostics diags("/etc/virtscale/virtscale.yml");
//   RuleSet rules = LoadRuleFiles({"rules/*.yml"}, "/etc/virtscale", {"jobs"},
//                                 std::chrono::seconds(5), diags);
//   if (!diags.ok()) std::cerr << diags.ToString();
//
// Checks beyond key types: min <= max, positive steps ("2" or "50%"), one
// threshold per condition, aggregates only on cpu/memory, per_member_* and
// target tracking only where they mean something, referenced sources exist,
// templates exist and are well-formed domain XML (CheckDomainTemplate), group
// names are unique across all files, and each glob matches at least one file.
#include <set>
#include <string>
#include <vector>

#include "autoscale/rules.h"
#include "common/yaml_reader.h"

namespace virtscale::autoscale {

// `globs` are relative to `base_dir` (the config file's directory) unless
// absolute; files are loaded in glob order. A glob that matches nothing is
// reported against `diags.file()`, at `glob_lines[i]` when given (the
// config's line of globs[i]). `default_interval` (the sample interval)
// applies to groups without `interval`.
RuleSet LoadRuleFiles(const std::vector<std::string>& globs, const std::string& base_dir,
                      const std::set<std::string>& source_names, Duration default_interval,
                      Diagnostics& diags, const std::vector<int>& glob_lines = {});

// Decodes one rule file already parsed; `file` names it in messages and its
// directory resolves `template`. Appends to `out`; exposed for tests.
void DecodeRuleFile(const YAML::Node& root, const std::string& file,
                    const std::set<std::string>& source_names, Duration default_interval,
                    RuleSet& out, Diagnostics& diags);

}  // namespace virtscale::autoscale
