#include "collectors/sampler.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "collectors/domain_metadata.h"
#include "collectors/snapshot_metrics.h"
#include "collectors/storage_pools.h"

namespace virtscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

template <typename Pred>
bool WaitUntil(Pred pred, Duration timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return pred();
}

// Writes a generated test-driver node file with scripts/gen-test-node.py.
std::string GenerateNode(int count, const std::string& extra_args = "") {
  std::string path = std::filesystem::absolute(::testing::TempDir() + "virtscale-node-" +
                                               std::to_string(count) + ".xml")
                         .string();
  std::string cmd = std::string("python3 ") + VIRTSCALE_SOURCE_DIR + "/scripts/gen-test-node.py " +
                    std::to_string(count) + " " + path + " " + extra_args;
  if (std::system(cmd.c_str()) != 0) return {};
  return path;
}

std::string DomainXml(virConnectPtr conn, const char* name) {
  virDomainPtr dom = virDomainLookupByName(conn, name);
  if (dom == nullptr) return {};
  char* xml = virDomainGetXMLDesc(dom, 0);
  std::string out = xml ? xml : "";
  free(xml);
  virDomainFree(dom);
  return out;
}

TEST(Sampler, FillsEveryCoreGroupFromTheTestDriverWithFallbacks) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.interval = std::chrono::hours(1)});
  EXPECT_EQ(sampler.Latest(), nullptr);

  SnapshotPtr first = sampler.SampleNow();
  std::this_thread::sleep_for(milliseconds(50));
  SnapshotPtr snap = sampler.SampleNow();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(sampler.Latest(), snap);
  EXPECT_EQ(snap->sequence, first->sequence + 1);
  EXPECT_TRUE(snap->libvirt_up);
  EXPECT_EQ(snap->libvirt_uri, "test:///default");
  ASSERT_EQ(snap->collectors.size(), 4u);
  EXPECT_EQ(snap->collectors[3].name, "jobs");
  for (const CollectorResult& c : snap->collectors) {
    EXPECT_TRUE(c.success) << c.name;
    EXPECT_GE(c.duration_seconds, 0) << c.name;
  }
  // The test driver has no job API: no job, and no error for the domain.
  for (const DomainStats& domain : snap->domains) {
    EXPECT_FALSE(domain.job) << domain.name;
    EXPECT_TRUE(domain.errors.empty()) << domain.name;
  }
  EXPECT_GT(snap->host.cpus.value_or(0), 0u);
  EXPECT_GT(snap->host.memory_total_bytes.value_or(0), 0u);

  const DomainStats* d = snap->FindDomain("test");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->state, DomainState::kRunning);
  EXPECT_TRUE(d->active);
  EXPECT_EQ(d->uuid.size(), 36u);
  EXPECT_EQ(d->os_type, "hvm");
  EXPECT_FALSE(d->timed_out);
  EXPECT_TRUE(d->errors.empty()) << d->errors.front();
  ASSERT_TRUE(d->virtual_cpus.has_value());
  EXPECT_EQ(d->vcpus.size(), *d->virtual_cpus);
  EXPECT_GT(d->max_memory_bytes.value_or(0), 0u);
  EXPECT_GT(d->cpu_time_ns.value_or(0), 0u);
  EXPECT_TRUE(d->memory.available.has_value());
  // Devices come from the domain XML, one series per target.
  DomainXmlInfo xml;
  ASSERT_TRUE(ParseDomainXml(DomainXml(conn.Acquire().get(), "test"), xml));
  ASSERT_EQ(d->blocks.size(), xml.disks.size());
  for (size_t i = 0; i < xml.disks.size(); ++i) {
    EXPECT_EQ(d->blocks[i].name, xml.disks[i].target);
    EXPECT_TRUE(d->blocks[i].rd_bytes.has_value());
  }
  ASSERT_EQ(d->interfaces.size(), xml.interfaces.size());
  // Rates need two samples; the test driver's cpu time is wall-clock based.
  ASSERT_TRUE(d->cpu_utilization.has_value());
  EXPECT_GE(*d->cpu_utilization, 0.0);
  EXPECT_LE(*d->cpu_utilization, 1.0);
  ASSERT_TRUE(d->memory_utilization.has_value());
  EXPECT_GE(*d->memory_utilization, 0.0);
  EXPECT_LE(*d->memory_utilization, 1.0);
  EXPECT_EQ(sampler.Counters().samples_total, 2u);
}

TEST(Sampler, AsksOnlyForEnabledGroups) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.stat_groups = VIR_DOMAIN_STATS_CPU_TOTAL});
  SnapshotPtr snap = sampler.SampleNow();
  const DomainStats* d = snap->FindDomain("test");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->state, DomainState::kRunning);  // state is always collected
  EXPECT_TRUE(d->cpu_time_ns.has_value());
  EXPECT_TRUE(d->blocks.empty());
  EXPECT_TRUE(d->vcpus.empty());
  EXPECT_FALSE(d->memory.available.has_value());

  SamplerOptions all = sampler.options();
  all.stat_groups = kCoreStatGroups;
  sampler.UpdateOptions(all);
  d = sampler.SampleNow()->FindDomain("test");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->blocks.empty());
}

TEST(Sampler, ThousandGeneratedDomainsAreAllSampled) {
  std::string path = GenerateNode(1000, "--group batch --group-every 10");
  ASSERT_FALSE(path.empty());
  LibvirtConnection conn({.uri = "test://" + path});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(30)));
  Sampler sampler(conn, {.call_timeout = seconds(60)});
  SnapshotPtr cold = sampler.SampleNow();
  SnapshotPtr warm = sampler.SampleNow();
  std::cout << "[ figures  ] 1000 test domains: first sample " << cold->duration_seconds * 1000
            << " ms, second sample (cached identity) " << warm->duration_seconds * 1000 << " ms\n";

  ASSERT_EQ(warm->domains.size(), 1000u);
  int running = 0, shutoff = 0, owned = 0, with_util = 0;
  for (size_t i = 0; i < warm->domains.size(); ++i) {
    const DomainStats& d = warm->domains[i];
    if (i > 0) {
      EXPECT_LT(warm->domains[i - 1].name, d.name);
    }
    EXPECT_FALSE(d.timed_out) << d.name;
    EXPECT_TRUE(d.errors.empty()) << d.name << ": " << d.errors.front();
    if (d.state == DomainState::kRunning) {
      ++running;
      EXPECT_EQ(d.blocks.size(), 1u) << d.name;
      EXPECT_EQ(d.interfaces.size(), 1u) << d.name;
      if (d.cpu_utilization) ++with_util;
    }
    if (d.state == DomainState::kShutoff) {
      ++shutoff;
      EXPECT_TRUE(d.blocks.empty()) << d.name;  // inactive: state and info only
      EXPECT_TRUE(d.max_memory_bytes.has_value()) << d.name;
    }
    if (d.metadata) {
      ++owned;
      EXPECT_EQ(d.metadata->group, "batch");
    }
  }
  EXPECT_EQ(running, 750);
  EXPECT_EQ(shutoff, 250);
  EXPECT_EQ(owned, 100);
  EXPECT_EQ(with_util, 750);
  const DomainStats* d10 = warm->FindDomain("vm-0010");
  ASSERT_NE(d10, nullptr);
  ASSERT_TRUE(d10->metadata.has_value());
  EXPECT_EQ(d10->metadata->created_at_unix, 1764194410);

  // The exposition of a real sample: every series once, and promtool-clean.
  std::string text = prometheus::TextSerializer().Serialize(SamplerCollectable(sampler).Collect());
  std::istringstream lines(text);
  std::set<std::string> series;
  size_t samples = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    ++samples;
    EXPECT_TRUE(series.insert(line.substr(0, line.rfind(' '))).second) << "duplicate: " << line;
  }
  EXPECT_GT(samples, 1000u * 5);
  EXPECT_NE(text.find("libvirt_domain_info_virtual_cpus{domain=\"vm-1000\"}"), std::string::npos);
  // promtool comes with scripts/install-deps.sh; without it this check fails.
  EXPECT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
      << "promtool not installed: run scripts/install-deps.sh";
  std::string prom = path + ".prom";
  std::ofstream(prom) << text;
  EXPECT_EQ(std::system(("promtool check metrics < " + prom).c_str()), 0);
  std::remove(prom.c_str());
  std::remove(path.c_str());
}

TEST(Sampler, LifecycleEventsBringNewDomainsIntoTheNextSample) {
  LibvirtConnection conn({.uri = "test:///default"});
  Sampler sampler(conn, {.interval = std::chrono::hours(1)});
  conn.SetDomainEventListener([&](const std::string& event, const std::string& domain) {
    sampler.OnDomainEvent(event, domain);
  });
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  std::vector<uint64_t> published;
  std::mutex mu;
  sampler.SetSnapshotListener([&](const SnapshotPtr& s) {
    std::lock_guard lock(mu);
    published.push_back(s->sequence);
  });
  sampler.Start();
  SnapshotPtr first = sampler.WaitFirstSample(seconds(10));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->FindDomain("event-vm"), nullptr);

  ConnectionRef c = conn.Acquire();
  virDomainPtr dom = virDomainCreateXML(c.get(), R"(<domain type='test'>
      <name>event-vm</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
      <os><type>hvm</type></os></domain>)",
                                        0);
  ASSERT_NE(dom, nullptr);
  // The interval is an hour: only the "started" event can trigger this sample.
  EXPECT_TRUE(WaitUntil(
      [&] {
        SnapshotPtr s = sampler.Latest();
        return s->FindDomain("event-vm") != nullptr;
      },
      seconds(10)));
  ASSERT_EQ(virDomainDestroy(dom), 0);
  virDomainFree(dom);
  EXPECT_TRUE(
      WaitUntil([&] { return sampler.Latest()->FindDomain("event-vm") == nullptr; }, seconds(10)));
  SamplerCounters counters = sampler.Counters();
  EXPECT_GE(counters.domain_events_total["started"], 1u);
  EXPECT_GE(counters.domain_events_total["stopped"], 1u);
  sampler.Stop();
  std::lock_guard lock(mu);
  ASSERT_GE(published.size(), 3u);
  for (size_t i = 1; i < published.size(); ++i) EXPECT_EQ(published[i], published[i - 1] + 1);
}

std::string OwnedDomainXml(const std::string& group) {
  return "<domain type='test'><name>owned-vm</name>"
         "<uuid>0b4f3c1e-1111-4222-8333-944445555666</uuid>"
         "<metadata>" +
         FormatVirtscaleMetadata(
             {group, "/t.xml", 1764194400, "0b4f3c1e-1111-4222-8333-944445555666", ""}) +
         "</metadata><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
         "<os><type>hvm</type></os></domain>";
}

TEST(Sampler, DefinedEventRefreshesCachedMetadata) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.identity_ttl = std::chrono::hours(1)});
  ConnectionRef c = conn.Acquire();
  virDomainPtr dom = virDomainDefineXML(c.get(), OwnedDomainXml("web").c_str());
  ASSERT_NE(dom, nullptr);
  const DomainStats* d = sampler.SampleNow()->FindDomain("owned-vm");
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->metadata.has_value());
  EXPECT_EQ(d->metadata->group, "web");
  EXPECT_EQ(d->state, DomainState::kShutoff);

  // Redefining changes the XML behind the cache; the event invalidates it.
  virDomainPtr redefined = virDomainDefineXML(c.get(), OwnedDomainXml("db").c_str());
  ASSERT_NE(redefined, nullptr);
  EXPECT_EQ(sampler.SampleNow()->FindDomain("owned-vm")->metadata->group, "web");  // cached
  sampler.OnDomainEvent("defined", "owned-vm");
  SnapshotPtr snap = sampler.SampleNow();
  d = snap->FindDomain("owned-vm");
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->metadata.has_value());
  EXPECT_EQ(d->metadata->group, "db");
  EXPECT_EQ(sampler.Counters().domain_events_total["defined"], 1u);
  EXPECT_EQ(virDomainUndefine(redefined), 0);
  virDomainFree(redefined);
  virDomainFree(dom);
}

TEST(Sampler, ReadsTheScaleStampWrittenThroughSetMetadata) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.identity_ttl = std::chrono::hours(1)});
  ConnectionRef c = conn.Acquire();
  virDomainPtr dom =
      virDomainDefineXML(c.get(),
                         "<domain type='test'><name>stamped-vm</name><memory unit='MiB'>64</memory>"
                         "<os><type>hvm</type></os></domain>");
  ASSERT_NE(dom, nullptr);
  const DomainStats* d = sampler.SampleNow()->FindDomain("stamped-vm");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->scale_stamp.has_value());  // none yet: not an error
  EXPECT_TRUE(d->errors.empty());

  std::string xml = FormatScaleStamp({"web", 1764194400, 1764194500}, /*bare=*/true);
  ASSERT_EQ(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), kScaleStampPrefix,
                                 kScaleStampNamespace, VIR_DOMAIN_AFFECT_CONFIG),
            0);
  sampler.OnDomainEvent("defined", "stamped-vm");
  SnapshotPtr snap = sampler.SampleNow();
  d = snap->FindDomain("stamped-vm");
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->scale_stamp.has_value());
  EXPECT_EQ(d->scale_stamp->group, "web");
  EXPECT_EQ(d->scale_stamp->last_up_unix, 1764194400);
  EXPECT_EQ(d->scale_stamp->last_down_unix, 1764194500);
  EXPECT_FALSE(d->metadata.has_value());  // a stamp is no ownership record
  EXPECT_EQ(virDomainUndefine(dom), 0);
  virDomainFree(dom);
}

const StoragePoolStats* FindPool(const Snapshot& snap, const std::string& name) {
  for (const StoragePoolStats& p : snap.storage_pools) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// The test driver's default-pool as the sampler sees it, against direct
// libvirt calls on a second connection (test:///default is one shared state).
TEST(Sampler, StoragePoolsMatchDirectLibvirtCallsAndExportTheInovexFamilies) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.interval = std::chrono::hours(1)});
  SnapshotPtr snap = sampler.SampleNow();
  ASSERT_NE(snap, nullptr);
  ASSERT_EQ(snap->collectors.size(), 4u);
  EXPECT_EQ(snap->collectors[2].name, "storage_pools");
  EXPECT_TRUE(snap->collectors[2].success);

  virConnectPtr direct = virConnectOpen("test:///default");
  ASSERT_NE(direct, nullptr);
  virStoragePoolPtr pool = virStoragePoolLookupByName(direct, "default-pool");
  ASSERT_NE(pool, nullptr);
  virStoragePoolInfo info{};
  ASSERT_EQ(virStoragePoolGetInfo(pool, &info), 0);
  char* xml = virStoragePoolGetXMLDesc(pool, 0);
  ASSERT_NE(xml, nullptr);
  const std::string type = ParseStoragePoolType(xml);
  free(xml);
  EXPECT_EQ(type, "dir");
  EXPECT_EQ(info.state, VIR_STORAGE_POOL_RUNNING);

  const StoragePoolStats* p = FindPool(*snap, "default-pool");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->type, type);
  EXPECT_EQ(p->state, StoragePoolState::kRunning);
  EXPECT_EQ(p->capacity_bytes, info.capacity);
  EXPECT_EQ(p->allocation_bytes, info.allocation);
  EXPECT_EQ(p->available_bytes, info.available);
  EXPECT_EQ(info.capacity, 100ULL << 30);  // `virsh pool-info`: 100.00 GiB, 0 B, 100.00 GiB

  std::vector<prometheus::MetricFamily> families;
  AppendSnapshotFamilies(*snap, families);
  std::string text = prometheus::TextSerializer().Serialize(families);
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has(
      "libvirt_storage_pool_info{storage_pool=\"default-pool\",type=\"dir\",state=\"running\"} 1"))
      << text;
  EXPECT_TRUE(has("libvirt_storage_pool_capacity_bytes{storage_pool=\"default-pool\"} " +
                  std::to_string(info.capacity)));
  EXPECT_TRUE(has("libvirt_storage_pool_allocation_bytes{storage_pool=\"default-pool\"} " +
                  std::to_string(info.allocation)));
  EXPECT_TRUE(has("libvirt_storage_pool_available_bytes{storage_pool=\"default-pool\"} " +
                  std::to_string(info.available)));
  EXPECT_TRUE(has("virtscale_scrape_collector_success{collector=\"storage_pools\"} 1"));

  // Stopped, the pool stays listed as inactive and its sizes go.
  ASSERT_EQ(virStoragePoolDestroy(pool), 0);
  snap = sampler.SampleNow();
  p = FindPool(*snap, "default-pool");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->state, StoragePoolState::kInactive);
  EXPECT_FALSE(p->capacity_bytes.has_value());
  EXPECT_FALSE(p->available_bytes.has_value());
  EXPECT_TRUE(snap->collectors[2].success);
  EXPECT_EQ(virStoragePoolCreate(pool, 0), 0);
  virStoragePoolFree(pool);
  virConnectClose(direct);
}

TEST(StoragePools, TypeComesFromTheRootPoolElement) {
  EXPECT_EQ(ParseStoragePoolType("<pool type='logical'><name>vg</name></pool>"), "logical");
  EXPECT_EQ(ParseStoragePoolType("<pool><name>none</name></pool>"), "");
  EXPECT_EQ(ParseStoragePoolType("<volume type='file'/>"), "");
  EXPECT_EQ(ParseStoragePoolType("<pool type='dir'"), "");
  EXPECT_EQ(ParseStoragePoolType(""), "");
}

TEST(Sampler, LibvirtDownPublishesUpFalseWithNoDomains) {
  LibvirtConnection conn({.uri = "qemu+unix:///system?socket=/nonexistent/virtscale-test.sock",
                          .initial_backoff = seconds(10)});
  conn.Start();
  Sampler sampler(conn, {});
  SnapshotPtr snap = sampler.SampleNow();
  ASSERT_NE(snap, nullptr);
  EXPECT_FALSE(snap->libvirt_up);
  EXPECT_TRUE(snap->domains.empty());
  ASSERT_EQ(snap->collectors.size(), 4u);
  for (const CollectorResult& c : snap->collectors) EXPECT_FALSE(c.success) << c.name;
  EXPECT_EQ(snap->collectors[2].name, "storage_pools");
  EXPECT_EQ(snap->collectors[3].name, "jobs");
  EXPECT_TRUE(snap->storage_pools.empty());
  EXPECT_EQ(sampler.WaitFirstSample(milliseconds(1)), snap);
}

}  // namespace
}  // namespace virtscale

namespace virtscale {
namespace {

std::shared_ptr<const MetadataLabels> NovaLabels(const std::vector<std::string>& names) {
  auto labels = std::make_shared<MetadataLabels>();
  const std::map<std::string, std::string> xpaths = {{"project", "/instance/owner/project/@uuid"},
                                                     {"flavor", "/instance/flavor/@name"},
                                                     {"user", "/instance/owner/user"}};
  std::string error;
  for (const std::string& n : names) {
    EXPECT_TRUE(labels->Add(n, "http://openstack.org/xmlns/libvirt/nova/1.1", xpaths.at(n), error))
        << error;
  }
  return labels;
}

TEST(Sampler, MetadataLabelsComeFromTheDomainXmlAndFollowAReload) {
  virConnectPtr direct = virConnectOpen("test:///default");
  ASSERT_NE(direct, nullptr);
  std::ifstream in(std::string(VIRTSCALE_TESTDATA) + "/domains/nova-instance.xml");
  std::stringstream xml;
  xml << in.rdbuf();
  virDomainPtr nova = virDomainDefineXML(direct, xml.str().c_str());
  ASSERT_NE(nova, nullptr);

  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  Sampler sampler(conn, {.interval = std::chrono::hours(1),
                         .metadata_labels = NovaLabels({"project", "flavor"})});
  auto text_of = [](const SnapshotPtr& snap) {
    std::vector<prometheus::MetricFamily> families;
    AppendSnapshotFamilies(*snap, families);
    return prometheus::TextSerializer().Serialize(families);
  };
  std::string text = text_of(sampler.SampleNow());
  EXPECT_NE(text.find("libvirt_domain_metadata_info{domain=\"nova-instance-1\",project="
                      "\"a3f1e6c2b7d94e0f8c5a2b1d0e9f8c7b\",flavor=\"m1.small\"} 1\n"),
            std::string::npos)
      << text;
  // A domain without nova metadata gets empty values (a join still matches it).
  EXPECT_NE(text.find("libvirt_domain_metadata_info{domain=\"test\",project=\"\",flavor=\"\"} 1\n"),
            std::string::npos)
      << text;

  // A reload with other labels reads every domain again at once.
  sampler.UpdateOptions(
      {.interval = std::chrono::hours(1), .metadata_labels = NovaLabels({"user"})});
  text = text_of(sampler.SampleNow());
  EXPECT_NE(
      text.find("libvirt_domain_metadata_info{domain=\"nova-instance-1\",user=\"alice\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_EQ(text.find("flavor="), std::string::npos) << text;

  // Without labels the family is gone.
  sampler.UpdateOptions({.interval = std::chrono::hours(1)});
  text = text_of(sampler.SampleNow());
  EXPECT_EQ(text.find("libvirt_domain_metadata_info"), std::string::npos) << text;

  EXPECT_EQ(virDomainUndefine(nova), 0);
  virDomainFree(nova);
  virConnectClose(direct);
}

}  // namespace
}  // namespace virtscale
