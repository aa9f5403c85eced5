#pragma once
// `virtscale check config FILE`: validates the config, every rule file and every
// template it names, printing each problem as FILE:LINE: message.
#include <ostream>
#include <string>

namespace virtscale {

// Returns the process exit code: 0 when clean, 1 otherwise.
int CheckConfigCommand(const std::string& file, std::ostream& out);

}  // namespace virtscale
