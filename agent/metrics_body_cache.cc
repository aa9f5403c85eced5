#include "agent/metrics_body_cache.h"

#include <prometheus/text_serializer.h>
#include <zlib.h>

#include <sstream>
#include <stdexcept>

#include "collectors/snapshot_metrics.h"

namespace virtscale {
namespace {

// RFC 1952: magic, deflate, no flags, no mtime, no extra flags, OS unix.
std::string GzipHeader() { return std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10); }

std::string GzipTrailer(unsigned long crc, size_t size) {
  std::string out(8, '\0');
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    out[4 + i] = static_cast<char>((size >> (8 * i)) & 0xff);
  }
  return out;
}

}  // namespace

std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

DeflatedText Deflate(const std::string& text, bool last) {
  z_stream zs{};
  // Raw deflate (windowBits -15); level 1: the text still compresses ~10x.
  if (deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  DeflatedText out;
  out.blocks.resize(deflateBound(&zs, text.size()) + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.blocks.data());
  zs.avail_out = static_cast<uInt>(out.blocks.size());
  const int rc = deflate(&zs, last ? Z_FINISH : Z_SYNC_FLUSH);
  const bool done = last ? rc == Z_STREAM_END : (rc == Z_OK && zs.avail_in == 0);
  out.blocks.resize(zs.total_out);
  out.blocks.shrink_to_fit();  // the bound is near the text's size; blocks are ~1/10 of it
  deflateEnd(&zs);
  if (!done) throw std::runtime_error("deflate failed");
  out.crc32 =
      crc32(0L, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size()));
  out.size = text.size();
  return out;
}

std::string Gzip(const std::string& text) {
  std::string out = GzipHeader();
  const DeflatedText d = Deflate(text, true);
  out += d.blocks;
  out += GzipTrailer(d.crc32, d.size);
  return out;
}

size_t MetricsBody::CopyRange(size_t offset, size_t length, std::string& out) const {
  out.clear();
  const std::string empty;
  const std::string* parts[] = {&head, tail ? tail.get() : &empty, &trailer};
  const size_t end = std::min(offset + length, size());
  size_t base = 0;
  for (const std::string* part : parts) {
    const size_t part_end = base + part->size();
    if (offset < part_end && end > base) {
      const size_t from = std::max(offset, base) - base;
      out.append(*part, from, std::min(end, part_end) - base - from);
    }
    base = part_end;
  }
  return out.size();
}

std::shared_ptr<const MetricsExposition::Rendered> MetricsExposition::RenderedFor(
    const SnapshotPtr& snapshot) {
  std::lock_guard lock(mu_);
  if (rendered_ && rendered_->snapshot == snapshot) return rendered_;
  auto r = std::make_shared<Rendered>();
  r->snapshot = snapshot;
  r->text = std::make_shared<const std::string>(SnapshotText(*snapshot));
  r->deflated = std::make_shared<const DeflatedText>(Deflate(*r->text, true));
  rendered_ = r;
  return r;
}

void MetricsExposition::Prepare(const SnapshotPtr& snapshot) {
  if (snapshot) RenderedFor(snapshot);
}

MetricsBody MetricsExposition::Render(const SnapshotPtr& snapshot,
                                      const std::vector<prometheus::MetricFamily>& dynamic,
                                      bool gzip) {
  MetricsBody body;
  body.gzip = gzip;
  body.head = SerializeFamilies(dynamic);
  auto rendered = snapshot ? RenderedFor(snapshot) : nullptr;
  if (!gzip) {
    if (rendered) body.tail = rendered->text;
    return body;
  }
  if (!rendered) {
    body.head = Gzip(body.head);
    return body;
  }
  // One stream: our blocks end byte-aligned and the cached blocks never refer
  // back before their own start, so they may follow as they are.
  const DeflatedText head = Deflate(body.head, false);
  const DeflatedText& tail = *rendered->deflated;
  body.head = GzipHeader() + head.blocks;
  body.tail = std::shared_ptr<const std::string>(rendered->deflated, &tail.blocks);
  body.trailer = GzipTrailer(crc32_combine(head.crc32, tail.crc32, static_cast<z_off_t>(tail.size)),
                             head.size + tail.size);
  return body;
}

}  // namespace virtscale
