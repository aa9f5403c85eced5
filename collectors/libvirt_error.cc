#include "collectors/libvirt_error.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <mutex>

#include "common/log.h"

namespace virtscale {
namespace {

void SilentErrorHandler(void* /*user_data*/, virErrorPtr error) {
  if (error == nullptr) return;
  // Many errors are expected (no metadata, unsupported call on a driver): keep
  // them out of stderr; the code that made the call decides what to log.
  LogDebug("libvirt error", {{"code", std::to_string(error->code)},
                             {"message", error->message ? error->message : ""}});
}

}  // namespace

bool IsConnectionErrorCode(int code) {
  return code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_RPC || code == VIR_ERR_NO_CONNECT ||
         code == VIR_ERR_INVALID_CONN || code == VIR_ERR_AUTH_FAILED;
}

LibvirtError LastLibvirtError() {
  LibvirtError out;
  virErrorPtr err = virGetLastError();
  if (err == nullptr) {
    out.message = "unknown libvirt error";
    return out;
  }
  out.code = err->code;
  out.domain = err->domain;
  out.message = err->message ? err->message : "unknown libvirt error";
  out.connection_lost = IsConnectionErrorCode(err->code);
  return out;
}

void InstallLibvirtErrorHandler() {
  static std::once_flag once;
  std::call_once(once, [] { virSetErrorFunc(nullptr, SilentErrorHandler); });
}

}  // namespace virtscale
