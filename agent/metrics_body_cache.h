#pragma once
// Renders /metrics. The families of one snapshot are serialised (and gzipped)
// once, right after the sample, and every scrape until the next sample reuses
// that text: scrape latency stays flat as domains grow. Only the small dynamic
// families (sample age, HTTP, autoscaler, sources) are rendered per request.
//
//   exposition.Prepare(snapshot);                        // sampler thread
//   MetricsBody body = exposition.Render(snapshot, dynamic_families, /*gzip=*/true);
//   // serve body.head then *body.tail, body.size() bytes
#include <prometheus/metric_family.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collectors/snapshot.h"

namespace virtscale {

// A response body in parts, so the large cached part is never copied. With gzip
// the parts form ONE gzip stream (header and dynamic families, the snapshot's
// cached deflate blocks, trailer), which every client decodes.
struct MetricsBody {
  std::string head;                         // dynamic families
  std::shared_ptr<const std::string> tail;  // the snapshot's families; may be null
  std::string trailer;                      // gzip CRC-32 and size, when gzip
  bool gzip = false;
  size_t size() const { return head.size() + (tail ? tail->size() : 0) + trailer.size(); }
  // Copies bytes [offset, offset + length) to `out`; returns how many were copied.
  size_t CopyRange(size_t offset, size_t length, std::string& out) const;
};

// Raw deflate blocks of a text and what a gzip trailer needs of it.
struct DeflatedText {
  std::string blocks;
  unsigned long crc32 = 0;
  size_t size = 0;
};
// `last`: end with a final block; otherwise end byte-aligned (Z_SYNC_FLUSH) so
// independently compressed blocks may follow in the same stream.
DeflatedText Deflate(const std::string& text, bool last);

class MetricsExposition {
 public:
  // Renders the snapshot's families ahead of the first scrape.
  void Prepare(const SnapshotPtr& snapshot);
  // `dynamic` must not repeat a family name of the snapshot's families.
  MetricsBody Render(const SnapshotPtr& snapshot,
                     const std::vector<prometheus::MetricFamily>& dynamic, bool gzip);

 private:
  struct Rendered {
    SnapshotPtr snapshot;  // keeps the pointer alive so the identity check is sound
    std::shared_ptr<const std::string> text;
    std::shared_ptr<const DeflatedText> deflated;
  };
  std::shared_ptr<const Rendered> RenderedFor(const SnapshotPtr& snapshot);

  std::mutex mu_;  // one render at a time; guards rendered_
  std::shared_ptr<const Rendered> rendered_;
};

std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families);
// One gzip member (RFC 1952) of `text`.
std::string Gzip(const std::string& text);

}  // namespace virtscale
