#include "common/file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace virtscale {

std::optional<std::string> ReadRegularFile(const std::string& path, size_t max_bytes,
                                           std::string& error, bool strict) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = "not a regular file";
    close(fd);
    return std::nullopt;
  }
  // Grow as the file does (procfs files report size 0): never allocate the
  // whole limit for a small file.
  std::string data;
  data.reserve(std::min<size_t>(static_cast<size_t>(std::max<off_t>(st.st_size, 0)), max_bytes) +
               1);
  size_t got = 0;
  char chunk[64 * 1024];
  while (got <= max_bytes) {
    const ssize_t n = read(fd, chunk, std::min(sizeof chunk, max_bytes + 1 - got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::strerror(errno);
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    data.append(chunk, static_cast<size_t>(n));
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (strict && got > max_bytes) {
    error = max_bytes % (1 << 20) == 0
                ? "larger than " + std::to_string(max_bytes >> 20) + " MiB, the limit for this file"
                : "larger than " + std::to_string(max_bytes) + " bytes, the limit for this file";
    return std::nullopt;
  }
  return data;
}

}  // namespace virtscale
