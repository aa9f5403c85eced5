// Fuzzes the web config file and basic auth (agent/web_config.h). Each input is
// used three ways:
//   - as a web config file, through LoadWebConfig: never crashes or throws;
//   - as a raw Authorization header, through BasicAuthenticator::Check;
//   - as the "user:password" of a well-formed Basic header: accepted exactly
//     when it is the one configured user's credentials (so no wrong user, no
//     password with a NUL or anything appended).
// The user's hash has bcrypt cost 4 (about 1 ms), so each Check stays cheap.
#include <crypt.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/web_config.h"

namespace {

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "correct horse";

std::filesystem::path g_file;
std::optional<virtscale::BasicAuthenticator> g_auth;

std::string Cost4Hash(const char* password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2y$", 4, nullptr, 0, salt, sizeof salt)) __builtin_trap();
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* hash = crypt_rn(password, salt, data.get(), sizeof(crypt_data));
  if (!hash || hash[0] == '*') __builtin_trap();
  return hash;
}

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_file = std::filesystem::temp_directory_path() /
           ("virtscale-fuzz-web-" + std::to_string(getpid()) + ".yml");
  g_auth.emplace(std::map<std::string, std::string>{{kUser, Cost4Hash(kPassword)}});
  std::atexit([] { std::filesystem::remove(g_file); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::ofstream(g_file, std::ios::trunc | std::ios::binary) << text;
  {
    virtscale::Diagnostics diags;
    (void)virtscale::LoadWebConfig(g_file.string(), diags);
  }
  (void)g_auth->Check(text);
  const bool right = text == std::string(kUser) + ":" + kPassword;
  if (g_auth->Check("Basic " + Base64(text)) != right) __builtin_trap();
  return 0;
}
