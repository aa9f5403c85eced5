#include "agent/tls_context.h"

#include <openssl/err.h>

#include <memory>

#include "common/file_reader.h"

namespace virtscale {
namespace {

int TlsVersion(const std::string& name) {
  if (name == "TLS10") return TLS1_VERSION;
  if (name == "TLS11") return TLS1_1_VERSION;
  if (name == "TLS13") return TLS1_3_VERSION;
  return TLS1_2_VERSION;
}

// Accepts any client certificate (RequireAnyClientCert / RequestClientCert).
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

// The reason OpenSSL queued for the last failure ("no such file", "key values
// mismatch"), clearing the queue so the next check starts clean.
std::string OpenSslReason() {
  std::string reason;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    const char* text = ERR_reason_error_string(e);
    if (text != nullptr && reason.empty()) reason = text;
  }
  return reason.empty() ? "" : ": " + reason;
}

// OpenSSL says "system lib" for a missing file; this names the cause.
bool Readable(const char* key, const std::string& path, std::string& error) {
  std::string why;
  if (ReadRegularFile(path, kMaxConfigBytes, why)) return true;
  error = std::string("cannot read ") + key + " " + path + ": " + why;
  return false;
}

}  // namespace

bool ConfigureTlsContext(SSL_CTX& ctx, const TlsServerConfig& tls, std::string& error) {
  if (!Readable("cert_file", tls.cert_file, error) || !Readable("key_file", tls.key_file, error) ||
      (!tls.client_ca_file.empty() && !Readable("client_ca_file", tls.client_ca_file, error)))
    return false;
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file.c_str()) != 1) {
    error = "cannot load cert_file " + tls.cert_file + OpenSslReason();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    error = "cannot load key_file " + tls.key_file + OpenSslReason();
    return false;
  }
  if (SSL_CTX_set_min_proto_version(&ctx, TlsVersion(tls.min_version)) != 1 ||
      (!tls.max_version.empty() &&
       SSL_CTX_set_max_proto_version(&ctx, TlsVersion(tls.max_version)) != 1)) {
    error = "cannot set TLS version bounds";
    return false;
  }

  const std::string& type = tls.client_auth_type;
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
      error = "cannot load client_ca_file " + tls.client_ca_file + OpenSslReason();
      return false;
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(&ctx, names);
  }
  if (type == "RequestClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, AcceptAnyCertificate);
  } else if (type == "RequireAnyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       AcceptAnyCertificate);
  } else if (type == "VerifyClientCertIfGiven") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  } else if (type == "RequireAndVerifyClientCert") {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
  }
  return true;
}

std::optional<std::string> CheckTlsServerConfig(const TlsServerConfig& tls) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                        SSL_CTX_free);
  if (!ctx) return "cannot create a TLS context";
  std::string error;
  if (!ConfigureTlsContext(*ctx, tls, error)) return error;
  return std::nullopt;
}

}  // namespace virtscale
