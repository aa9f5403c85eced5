#pragma once
// `virtscale check config FILE`: validates the config, every rule file and every
// template it names, printing each problem as FILE:LINE: message.
#include <ostream>
#include <string>

namespace virtscale {

// Prints every error and warning; returns the process exit code: 1 on
// errors (and with `strict` on warnings), else 0.
int CheckConfigCommand(const std::string& file, bool strict, std::ostream& out);

}  // namespace virtscale
