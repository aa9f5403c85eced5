#pragma once
// SHA-256 through OpenSSL's EVP interface, as lower-case hex: the web config's
// credential cache keys and the domain templates' content hashes.
//
//   Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#include <string>
#include <string_view>

namespace virtscale {

std::string Sha256Hex(std::string_view data);

}  // namespace virtscale
