#pragma once
// The server's TLS settings from the web config, applied to an OpenSSL
// context. The server and `check config` use the same code, so a web config
// that passes the check also starts.
#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "agent/web_config.h"

namespace virtscale {

// Loads the certificate chain, the key (which must match), the client CA and
// the version bounds, and sets client verification from client_auth_type.
bool ConfigureTlsContext(SSL_CTX& ctx, const TlsServerConfig& tls, std::string& error);

// What ConfigureTlsContext would refuse, on a scratch context.
std::optional<std::string> CheckTlsServerConfig(const TlsServerConfig& tls);

}  // namespace virtscale
