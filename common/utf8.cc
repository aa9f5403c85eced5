#include "common/utf8.h"

#include <cstdint>

namespace virtscale {
namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";

// Length of the well-formed sequence starting at text[i], or 0 with `bad` set
// to the length of the maximal invalid subpart to replace.
size_t SequenceLength(std::string_view text, size_t i, size_t& bad) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    if (b0 == 0xe0) lo = 0xa0;  // overlong
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    if (b0 == 0xf0) lo = 0x90;  // overlong
    if (b0 == 0xf4) hi = 0x8f;  // beyond U+10FFFF
  } else {
    bad = 1;
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    const uint8_t lower = k == 1 ? lo : 0x80, upper = k == 1 ? hi : 0xbf;
    if (i + k >= text.size() || byte(i + k) < lower || byte(i + k) > upper) {
      bad = k;
      return 0;
    }
  }
  return need + 1;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t bad = 0;
    const size_t n = SequenceLength(text, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ValidUtf8(std::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    size_t bad = 0;
    const size_t n = SequenceLength(text, i, bad);
    if (n == 0) {
      out += kReplacement;
      i += bad;
    } else {
      out.append(text, i, n);
      i += n;
    }
  }
  return out;
}

std::string BoundedUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return ValidUtf8(text);
  return ValidUtf8(text.substr(0, max_bytes)) + "...";
}

}  // namespace virtscale
