#include "agent/metrics_body_cache.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace virtscale {
namespace {

// Inflates one gzip stream; fails the test if anything follows its end.
std::string Gunzip(const std::string& data) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out(1 << 22, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u) << "bytes after the gzip stream";
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

std::string Whole(const MetricsBody& body) {
  std::string out, chunk;
  // Odd chunk sizes cross every part boundary.
  for (size_t offset = 0; offset < body.size(); offset += chunk.size()) {
    EXPECT_GT(body.CopyRange(offset, 7, chunk), 0u);
    out += chunk;
  }
  return out;
}

SnapshotPtr TestSnapshot() {
  auto s = std::make_shared<Snapshot>();
  s->libvirt_up = true;
  for (int i = 0; i < 50; ++i) {
    DomainStats d;
    d.name = "vm-" + std::to_string(i);
    d.state = DomainState::kRunning;
    d.active = true;
    d.virtual_cpus = 2;
    d.cpu_time_ns = 1000000000ull * i;
    s->domains.push_back(d);
  }
  return s;
}

prometheus::MetricFamily Dynamic() {
  prometheus::MetricFamily f{
      "virtscale_test_dynamic", "A dynamic family.", prometheus::MetricType::Gauge, {}};
  prometheus::ClientMetric m;
  m.gauge.value = 42;
  f.metric.push_back(m);
  return f;
}

TEST(MetricsExposition, GzipBodyIsOneStreamEqualToThePlainBody) {
  MetricsExposition exposition;
  SnapshotPtr snapshot = TestSnapshot();
  exposition.Prepare(snapshot);
  MetricsBody plain = exposition.Render(snapshot, {Dynamic()}, false);
  MetricsBody gz = exposition.Render(snapshot, {Dynamic()}, true);
  ASSERT_TRUE(gz.gzip);
  const std::string text = Whole(plain);
  EXPECT_NE(text.find("virtscale_test_dynamic 42"), std::string::npos);
  EXPECT_NE(text.find("domain=\"vm-49\""), std::string::npos);
  EXPECT_EQ(Gunzip(Whole(gz)), text);
  EXPECT_LT(gz.size(), plain.size());
}

TEST(MetricsExposition, ReusesTheRenderedSnapshotUntilTheNextOne) {
  MetricsExposition exposition;
  SnapshotPtr first = TestSnapshot();
  MetricsBody a = exposition.Render(first, {}, false);
  MetricsBody b = exposition.Render(first, {}, false);
  EXPECT_EQ(a.tail.get(), b.tail.get());  // same cached text, not a copy
  MetricsBody c = exposition.Render(TestSnapshot(), {}, false);
  EXPECT_NE(a.tail.get(), c.tail.get());
  EXPECT_EQ(*a.tail, *c.tail);  // equal content, new render
}

TEST(MetricsExposition, NoSnapshotYetStillGivesAValidGzipBody) {
  MetricsExposition exposition;
  MetricsBody gz = exposition.Render(nullptr, {Dynamic()}, true);
  EXPECT_EQ(gz.tail, nullptr);
  EXPECT_NE(Gunzip(Whole(gz)).find("virtscale_test_dynamic 42"), std::string::npos);
}

}  // namespace
}  // namespace virtscale
