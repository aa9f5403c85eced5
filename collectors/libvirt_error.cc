#include "collectors/libvirt_error.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <mutex>

#include "common/log.h"

namespace virtscale {
namespace {

// Many errors are expected (no metadata, unsupported call on a driver) and
// libvirt reports each one here, without naming the domain: the code that made
// the call decides what to log, with the domain, so this handler stays silent.
void SilentErrorHandler(void* /*user_data*/, virErrorPtr /*error*/) {}

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

bool IsUnsupported(const LibvirtError& e) {
  return e.code == VIR_ERR_NO_SUPPORT || e.code == VIR_ERR_ARGUMENT_UNSUPPORTED ||
         e.code == VIR_ERR_OPERATION_UNSUPPORTED || e.code == VIR_ERR_OPERATION_INVALID;
}

}  // namespace virtscale
