#pragma once
// Helpers for libvirt's thread-local last error. libvirt reports failures as a
// return code plus a per-thread virError; these turn that into a short message
// and tell connection-class failures (reconnect) from per-domain ones.
//
//   if (virDomainGetInfo(dom, &info) < 0) {
//     LibvirtError err = LastLibvirtError();
//     if (err.connection_lost) conn.ReportBroken();
//   }
#include <string>

namespace virtscale {

struct LibvirtError {
  int code = 0;    // virErrorNumber, 0 when libvirt set none
  int domain = 0;  // virErrorDomain
  std::string message;
  bool connection_lost = false;  // RPC/system/no-connect class: the connection is unusable
};

// Reads (and does not reset) this thread's last libvirt error.
LibvirtError LastLibvirtError();

// True for error codes after which the connection should be reopened.
bool IsConnectionErrorCode(int code);

// True when the driver lacks the call (or this use of it): not a failure, and
// not worth asking again.
bool IsUnsupported(const LibvirtError& e);

// Replaces libvirt's default handler (which prints every error to stderr) with
// one that logs at debug level; callers log what matters. Idempotent.
void InstallLibvirtErrorHandler();

}  // namespace virtscale
