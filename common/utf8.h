#pragma once
// Text from outside (scraped label values, libvirt strings, file contents) may
// hold any bytes; JSON and the exposition need UTF-8. ValidUtf8 replaces each
// invalid byte sequence with U+FFFD where the text enters, so every later use
// can rely on it.
//
//   ValidUtf8("caf\xe9") -> "caf\xef\xbf\xbd"   (U+FFFD)
#include <string>
#include <string_view>

namespace virtscale {

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code
// points beyond U+10FFFF).
[[nodiscard]] bool IsValidUtf8(std::string_view text);

// `text` with every maximal invalid subsequence replaced by U+FFFD (the
// "substitution of maximal subparts" practice of Unicode chapter 3).
[[nodiscard]] std::string ValidUtf8(std::string_view text);

// ValidUtf8 of at most the first `max_bytes` of `text`, with "..." when cut:
// for messages that quote outside text (a cut sequence becomes U+FFFD).
[[nodiscard]] std::string BoundedUtf8(std::string_view text, size_t max_bytes);

}  // namespace virtscale
