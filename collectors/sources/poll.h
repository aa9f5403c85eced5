#pragma once
// One poll of one source: an HTTP GET (prometheus, scrape) or a file read,
// decoded to a single number. Blocking, bounded by the source's `timeout`;
// SourceManager calls it from the source's own thread. Redirects are followed
// only within the source's origin (scheme, host, port), at most 10, all within
// that one timeout, so credentials never reach another origin; a redirect
// elsewhere fails the poll ("http_status: redirect from ... not followed").
//
//   RequestCanceller canceller;   // another thread may call canceller.Cancel()
//   SourceResult<double> r = PollSource(config, &canceller);
//   // r.error().ToString() e.g. "timeout: no complete response within 5s from http://..."
#include <mutex>

#include "collectors/sources/source_config.h"
#include "collectors/sources/source_result.h"

namespace httplib {
class Client;
}

namespace virtscale {

// Lets another thread abort a request in flight, so Stop() does not wait for a
// slow server. A request still connecting ends at its connection timeout.
class RequestCanceller {
 public:
  // Aborts the current request (if any) and makes every later Attach fail.
  void Cancel();
  bool cancelled() const;

  // Used by PollSource around a request: Attach returns false once cancelled.
  bool Attach(httplib::Client* client);
  void Detach();

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  httplib::Client* client_ = nullptr;
};

// Reads the source once. `canceller` may be null.
[[nodiscard]] SourceResult<double> PollSource(const SourceConfig& config,
                                              RequestCanceller* canceller = nullptr);

// Largest HTTP body or file read; more is "response_too_large" (HTTP) or "parse" (file).
inline constexpr size_t kMaxHttpBodyBytes = 16 << 20;
inline constexpr size_t kMaxFileBytes = 64 << 10;

}  // namespace virtscale
