#pragma once
// Escapes text for XML and HTML element content and quoted attribute values
// (& < > " '), for the landing page and the simulator's SVG plot.
#include <string>
#include <string_view>

namespace virtscale {

std::string XmlEscape(std::string_view text);

}  // namespace virtscale
