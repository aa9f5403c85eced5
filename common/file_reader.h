#pragma once
// Reads a configuration or secret file whole. Only regular files: a FIFO or a
// device named by mistake would block a reload forever or never end.
//
//   std::string error;
//   auto text = ReadRegularFile("/etc/virtscale/virtscale.yml", kMaxConfigBytes, error);
//   if (!text) ... error is the reason: "No such file or directory" ...
#include <cstddef>
#include <optional>
#include <string>

namespace virtscale {

// Config, rule and web config files, and secrets (docs/configuration.md "Limits").
inline constexpr size_t kMaxConfigBytes = 4 << 20;

// At most `max_bytes + 1` bytes are read, so a caller can tell "too large" from
// "exactly the limit"; larger files are an error here only when `strict`.
std::optional<std::string> ReadRegularFile(const std::string& path, size_t max_bytes,
                                           std::string& error, bool strict = true);

}  // namespace virtscale
