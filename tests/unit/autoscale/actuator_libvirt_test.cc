// LibvirtActuator against libvirt's in-process test driver: every operation
// really defines, starts, stops and undefines domains and creates/deletes
// storage volumes, and the outcome is checked with plain libvirt calls.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <pugixml.hpp>
#include <set>
#include <string>

#include "autoscale/actuator.h"
#include "autoscale/libvirt_actuator.h"
#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"

namespace virtscale::autoscale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A private test-driver node: "web-1" is an adopted domain (no metadata) whose
// name looks like a group member, "other-1" belongs to another group, and the
// pool holds the base volume templates refer to.
constexpr const char* kNodeXml = R"(<node>
  <domain type='test'>
    <name>web-1</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>other-1</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <metadata>
      <virtscale:instance xmlns:virtscale="http://virtscale.org/xmlns/domain/1.0">
        <virtscale:group>other</virtscale:group>
      </virtscale:instance>
    </metadata>
  </domain>
  <pool type='dir'>
    <name>default-pool</name>
    <target><path>/default-pool</path></target>
    <volume type='file'>
      <name>base.qcow2</name>
      <capacity unit='MiB'>64</capacity>
      <target><path>/default-pool/base.qcow2</path><format type='qcow2'/></target>
    </volume>
  </pool>
</node>)";

std::string VolumeTemplate(const std::string& annotation_attrs, const std::string& memory) {
  return R"(<domain type='test'>
  <name>tmpl</name>
  <metadata>
    <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0" )" +
         annotation_attrs + R"(/>
  </metadata>
  <memory unit='KiB'>)" +
         memory + R"(</memory>
  <vcpu>2</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/default-pool/base.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'><source network='default'/></interface>
  </devices>
</domain>)";
}

class LibvirtActuatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InstallLibvirtErrorHandler();  // errors are read from results
    dir_ = std::filesystem::temp_directory_path() /
           ("virtscale-actuator-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::string node = Write("node.xml", kNodeXml);
    virConnectPtr raw = virConnectOpen(("test://" + node).c_str());
    ASSERT_NE(raw, nullptr) << virGetLastErrorMessage();
    conn_ = ConnectionRef(raw, [](virConnectPtr c) { virConnectClose(c); });
    demo_template_ = std::string(VIRTSCALE_SOURCE_DIR) + "/config/templates/demo.xml";
    overlay_template_ =
        Write("overlay.xml",
              VolumeTemplate("target='vda' pool='default-pool' base='base.qcow2' mode='overlay'",
                             "65536"));
  }
  void TearDown() override {
    conn_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  LibvirtActuator MakeActuator(LibvirtActuator::Options options = {}) {
    if (options.poll_interval == LibvirtActuator::Options{}.poll_interval) {
      options.poll_interval = std::chrono::milliseconds(5);
    }
    if (!options.now_unix) options.now_unix = [] { return int64_t{1764194400}; };
    return LibvirtActuator([this] { return conn_; }, std::move(options));
  }

  Operation Create(const std::string& template_path, const std::string& group = "web") {
    Operation op;
    op.kind = Operation::Kind::kCreate;
    op.group = group;
    op.template_path = template_path;
    return op;
  }
  Operation On(Operation::Kind kind, const std::string& domain, const std::string& group = "web") {
    Operation op;
    op.kind = kind;
    op.group = group;
    op.domain = domain;
    op.shutdown_timeout = std::chrono::milliseconds(200);
    return op;
  }

  bool Exists(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (dom) virDomainFree(dom);
    return dom != nullptr;
  }
  // virDomainState, or -1 when the domain does not exist.
  int State(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return -1;
    int state = -1, reason = 0;
    virDomainGetState(dom, &state, &reason, 0);
    virDomainFree(dom);
    return state;
  }
  int StateReason(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return -1;
    int state = -1, reason = -1;
    virDomainGetState(dom, &state, &reason, 0);
    virDomainFree(dom);
    return reason;
  }
  std::optional<std::string> Metadata(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return std::nullopt;
    char* xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0);
    virDomainFree(dom);
    if (!xml) return std::nullopt;
    std::string out = xml;
    free(xml);
    return out;
  }
  std::string DomainXml(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return "";
    char* xml = virDomainGetXMLDesc(dom, 0);
    virDomainFree(dom);
    std::string out = xml ? xml : "";
    free(xml);
    return out;
  }
  // The volume's XML, or nullopt when it does not exist.
  std::optional<std::string> Volume(const std::string& name) {
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn_.get(), "default-pool");
    if (!pool) return std::nullopt;
    virStorageVolPtr vol = virStorageVolLookupByName(pool, name.c_str());
    virStoragePoolFree(pool);
    if (!vol) return std::nullopt;
    char* xml = virStorageVolGetXMLDesc(vol, 0);
    virStorageVolFree(vol);
    std::string out = xml ? xml : "";
    free(xml);
    return out;
  }
  int VolumeCount() {
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn_.get(), "default-pool");
    int n = virStoragePoolNumOfVolumes(pool);
    virStoragePoolFree(pool);
    return n;
  }
  void DefinePlain(virConnectPtr conn, const std::string& name) {
    std::string xml = "<domain type='test'><name>" + name +
                      "</name><memory>65536</memory><os><type>hvm</type></os></domain>";
    virDomainPtr dom = virDomainDefineXML(conn, xml.c_str());
    ASSERT_NE(dom, nullptr) << virGetLastErrorMessage();
    virDomainFree(dom);
  }

  std::filesystem::path dir_;
  ConnectionRef conn_;
  std::string demo_template_;
  std::string overlay_template_;
};

TEST_F(LibvirtActuatorTest, CreateStopStartDeleteRoundTrip) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  EXPECT_EQ(created.domain, "web-2");  // web-1 exists (adopted)
  EXPECT_GE(created.duration_seconds, 0.0);
  EXPECT_EQ(State("web-2"), VIR_DOMAIN_RUNNING);

  std::optional<std::string> metadata = Metadata("web-2");
  ASSERT_TRUE(metadata.has_value());
  std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(*metadata);
  ASSERT_TRUE(meta.has_value()) << *metadata;
  EXPECT_EQ(meta->group, "web");
  EXPECT_EQ(meta->template_path, demo_template_);
  EXPECT_EQ(meta->created_at_unix, 1764194400);
  EXPECT_THAT(DomainXml("web-2"), HasSubstr("<mac address='52:54:00:"));

  OperationResult stopped = actuator.Execute(On(Operation::Kind::kStop, "web-2"));
  ASSERT_TRUE(stopped.ok) << stopped.error;
  EXPECT_EQ(stopped.domain, "web-2");
  EXPECT_EQ(State("web-2"), VIR_DOMAIN_SHUTOFF);  // stopped, still defined

  OperationResult started = actuator.Execute(On(Operation::Kind::kStart, "web-2"));
  ASSERT_TRUE(started.ok) << started.error;
  EXPECT_EQ(State("web-2"), VIR_DOMAIN_RUNNING);

  OperationResult deleted = actuator.Execute(On(Operation::Kind::kDelete, "web-2"));
  ASSERT_TRUE(deleted.ok) << deleted.error;
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_TRUE(Exists("web-1"));
}

TEST_F(LibvirtActuatorTest, NamesAreTheSmallestFreeNumberAndUuidsDiffer) {
  LibvirtActuator actuator = MakeActuator();
  std::set<std::string> uuids;
  for (const char* expected : {"web-2", "web-3", "web-4"}) {
    OperationResult r = actuator.Execute(Create(demo_template_));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.domain, expected);
    pugi::xml_document doc;
    doc.load_string(DomainXml(r.domain).c_str());
    uuids.insert(doc.child("domain").child_value("uuid"));
  }
  EXPECT_EQ(uuids.size(), 3u);
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kDelete, "web-3")).ok);
  OperationResult again = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(again.domain, "web-3");
}

TEST_F(LibvirtActuatorTest, NeverDeletesADomainWithoutMetadata) {
  LibvirtActuator actuator = MakeActuator();
  ASSERT_EQ(State("web-1"), VIR_DOMAIN_RUNNING);
  OperationResult r = actuator.Execute(On(Operation::Kind::kDelete, "web-1"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "refusing to delete domain web-1: not created by virtscale");
  EXPECT_EQ(State("web-1"), VIR_DOMAIN_RUNNING);  // not even stopped
}

TEST_F(LibvirtActuatorTest, NeverDeletesAnotherGroupsDomain) {
  LibvirtActuator actuator = MakeActuator();
  int before = State("other-1");
  ASSERT_NE(before, -1);
  OperationResult r = actuator.Execute(On(Operation::Kind::kDelete, "other-1", "web"));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("refusing to delete domain other-1: created by virtscale for "
                                  "group 'other'"));
  EXPECT_EQ(State("other-1"), before);
  // Its own group may delete it.
  OperationResult own = actuator.Execute(On(Operation::Kind::kDelete, "other-1", "other"));
  EXPECT_TRUE(own.ok) << own.error;
  EXPECT_FALSE(Exists("other-1"));
}

TEST_F(LibvirtActuatorTest, OverlayVolumeIsCreatedUsedRecordedAndDeleted) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.domain, "web-2");

  std::optional<std::string> volume = Volume("web-2-vda.qcow2");
  ASSERT_TRUE(volume.has_value());
  pugi::xml_document vol;
  vol.load_string(volume->c_str());
  EXPECT_STREQ(vol.child("volume").child("backingStore").child_value("path"),
               "/default-pool/base.qcow2");
  EXPECT_STREQ(vol.child("volume").child("target").child("format").attribute("type").value(),
               "qcow2");
  EXPECT_EQ(vol.child("volume").child("capacity").text().as_ullong(), 64ull << 20);

  pugi::xml_document dom;
  dom.load_string(DomainXml("web-2").c_str());
  pugi::xml_node disk = dom.child("domain").child("devices").child("disk");
  EXPECT_STREQ(disk.child("source").attribute("file").value(), "/default-pool/web-2-vda.qcow2");
  EXPECT_THAT(DomainXml("web-2"), Not(HasSubstr("xmlns/template")));

  std::vector<CreatedVolume> recorded = ParseRecordedVolumes(Metadata("web-2").value_or(""));
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].pool, "default-pool");
  EXPECT_EQ(recorded[0].name, "web-2-vda.qcow2");

  OperationResult deleted = actuator.Execute(On(Operation::Kind::kDelete, "web-2"));
  ASSERT_TRUE(deleted.ok) << deleted.error;
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());
  EXPECT_TRUE(Volume("base.qcow2").has_value());  // only recorded volumes go
}

TEST_F(LibvirtActuatorTest, CloneVolumeIsAFullCopyAndIsDeleted) {
  std::string clone = Write(
      "clone.xml",
      VolumeTemplate("target='vda' pool='default-pool' base='base.qcow2' mode='clone'", "65536"));
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(clone));
  ASSERT_TRUE(r.ok) << r.error;
  std::optional<std::string> volume = Volume("web-2-vda.qcow2");  // format from the base
  ASSERT_TRUE(volume.has_value());
  EXPECT_THAT(*volume, Not(HasSubstr("<backingStore>")));
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kDelete, "web-2")).ok);
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, DefineFailureRollsBackVolumes) {
  // Valid for the template parser, rejected by libvirt.
  std::string bad =
      Write("bad.xml",
            VolumeTemplate("target='vda' pool='default-pool' base='base.qcow2'", "not-a-number"));
  int volumes_before = VolumeCount();
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(bad));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.domain, "web-2");
  EXPECT_THAT(r.error, StartsWith("define: XML error"));
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());
  EXPECT_EQ(VolumeCount(), volumes_before);
}

TEST_F(LibvirtActuatorTest, MissingBaseVolumeFailsBeforeDefining) {
  std::string tmpl =
      Write("nobase.xml",
            VolumeTemplate("target='vda' pool='default-pool' base='absent.qcow2'", "65536"));
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(tmpl));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("volume vda: base absent.qcow2: "));
  EXPECT_FALSE(Exists("web-2"));
}

TEST_F(LibvirtActuatorTest, StartFailureUndefinesTheNewDomainAndItsVolumes) {
  LibvirtActuator::Options options;
  // Starting it behind the actuator's back makes its own virDomainCreate fail.
  options.before_start = [](virDomainPtr dom) { ASSERT_EQ(virDomainCreate(dom), 0); };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult r = actuator.Execute(Create(overlay_template_));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("start: "));
  EXPECT_THAT(r.error, Not(HasSubstr("rollback")));  // the rollback itself succeeded
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, NameTakenBetweenListAndDefineRetriesWithTheNextName) {
  LibvirtActuator::Options options;
  int defines = 0;
  options.before_define = [&](virConnectPtr conn, const std::string& name) {
    if (defines++ == 0) DefinePlain(conn, name);  // a concurrent definer wins web-2
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.domain, "web-3");
  EXPECT_FALSE(Metadata("web-2").has_value());  // the other definer's domain, untouched
  EXPECT_TRUE(Exists("web-2"));
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());  // the first attempt's volume is gone
  EXPECT_TRUE(Volume("web-3-vda.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, NameClashesGiveUpAfterMaxAttempts) {
  LibvirtActuator::Options options;
  options.max_name_attempts = 3;
  options.before_define = [&](virConnectPtr conn, const std::string& name) {
    DefinePlain(conn, name);
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult r = actuator.Execute(Create(demo_template_));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("no free name after 3 attempts; last: define: "));
  EXPECT_THAT(r.error, HasSubstr("already exists"));
  EXPECT_EQ(r.domain, "web-4");  // the last name tried
  EXPECT_FALSE(Exists("web-5"));
  for (const char* name : {"web-2", "web-3", "web-4"}) {
    EXPECT_FALSE(Metadata(name).has_value()) << name;
  }
}

TEST_F(LibvirtActuatorTest, LeftoverVolumeMakesTheNameUnusableNotTheGroup) {
  LibvirtActuator actuator = MakeActuator();
  ASSERT_TRUE(actuator.Execute(Create(overlay_template_)).ok);  // web-2 + web-2-vda.qcow2
  // Undefine web-2 behind the actuator's back: its volume stays behind.
  virDomainPtr dom = virDomainLookupByName(conn_.get(), "web-2");
  ASSERT_NE(dom, nullptr);
  virDomainDestroy(dom);
  ASSERT_EQ(virDomainUndefine(dom), 0);
  virDomainFree(dom);

  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.domain, "web-3");
  EXPECT_TRUE(Volume("web-2-vda.qcow2").has_value());  // not ours to delete now
}

TEST_F(LibvirtActuatorTest, StopIsAGracefulShutdownWhenTheGuestObeys) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kStop, created.domain)).ok);
  EXPECT_EQ(State(created.domain), VIR_DOMAIN_SHUTOFF);
  EXPECT_EQ(StateReason(created.domain), VIR_DOMAIN_SHUTOFF_SHUTDOWN);
}

TEST_F(LibvirtActuatorTest, StopDestroysAGuestThatIgnoresShutdownAfterTheTimeout) {
  LibvirtActuator::Options options;
  int requests = 0;
  options.request_shutdown = [&](virDomainPtr) {
    ++requests;
    return 0;  // accepted, but the guest never powers off
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  OperationResult r = actuator.Execute(On(Operation::Kind::kStop, created.domain));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(requests, 1);
  EXPECT_EQ(State(created.domain), VIR_DOMAIN_SHUTOFF);
  EXPECT_EQ(StateReason(created.domain), VIR_DOMAIN_SHUTOFF_DESTROYED);
  EXPECT_TRUE(Exists(created.domain));
}

TEST_F(LibvirtActuatorTest, StopDestroysAtOnceWhenTheShutdownRequestFails) {
  LibvirtActuator::Options options;
  options.request_shutdown = [](virDomainPtr) { return -1; };
  options.poll_interval = std::chrono::hours(1);  // never polled: a wait would hang the test
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  Operation stop = On(Operation::Kind::kStop, created.domain);
  stop.shutdown_timeout = std::chrono::hours(1);
  ASSERT_TRUE(actuator.Execute(stop).ok);
  EXPECT_EQ(StateReason(created.domain), VIR_DOMAIN_SHUTOFF_DESTROYED);
}

TEST_F(LibvirtActuatorTest, DeleteStopsAGuestThatIgnoresShutdownThenUndefines) {
  LibvirtActuator::Options options;
  options.request_shutdown = [](virDomainPtr) { return 0; };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(created.ok) << created.error;
  OperationResult r = actuator.Execute(On(Operation::Kind::kDelete, created.domain));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(Exists(created.domain));
  EXPECT_FALSE(Volume(created.domain + "-vda.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, StartAndStopAreIdempotent) {
  LibvirtActuator actuator = MakeActuator();
  EXPECT_TRUE(actuator.Execute(On(Operation::Kind::kStart, "web-1")).ok);  // already running
  EXPECT_EQ(State("web-1"), VIR_DOMAIN_RUNNING);
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kStop, "web-1")).ok);  // adopted: stop is fine
  EXPECT_EQ(State("web-1"), VIR_DOMAIN_SHUTOFF);
  EXPECT_TRUE(actuator.Execute(On(Operation::Kind::kStop, "web-1")).ok);
  EXPECT_EQ(State("web-1"), VIR_DOMAIN_SHUTOFF);
}

TEST_F(LibvirtActuatorTest, UnknownDomainReportsLibvirtsMessage) {
  LibvirtActuator actuator = MakeActuator();
  for (Operation::Kind kind :
       {Operation::Kind::kStart, Operation::Kind::kStop, Operation::Kind::kDelete}) {
    OperationResult r = actuator.Execute(On(kind, "web-99"));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.domain, "web-99");
    EXPECT_THAT(r.error, StartsWith("lookup web-99: "));
    EXPECT_THAT(r.error, HasSubstr("web-99"));
  }
}

TEST_F(LibvirtActuatorTest, MissingTemplateFailsWithThePath) {
  LibvirtActuator actuator = MakeActuator();
  std::string path = (dir_ / "absent.xml").string();
  OperationResult r = actuator.Execute(Create(path));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, StartsWith("template: " + path + ": cannot read template"));
}

TEST_F(LibvirtActuatorTest, LibvirtDownFailsEveryOperationCleanly) {
  LibvirtActuator actuator([] { return ConnectionRef(); });
  for (Operation op :
       {Create(demo_template_), On(Operation::Kind::kStart, "web-1"),
        On(Operation::Kind::kStop, "web-1"), On(Operation::Kind::kDelete, "web-1")}) {
    OperationResult r = actuator.Execute(op);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "libvirt down");
  }
  EXPECT_EQ(State("web-1"), VIR_DOMAIN_RUNNING);
}

TEST(LibvirtActuatorDefaultDriverTest, DemoTemplateWorksOnTestDefault) {
  InstallLibvirtErrorHandler();
  virConnectPtr raw = virConnectOpen("test:///default");
  ASSERT_NE(raw, nullptr);
  ConnectionRef conn(raw, [](virConnectPtr c) { virConnectClose(c); });
  LibvirtActuator actuator([conn] { return conn; });
  const std::string group = "actuator-test-demo";
  Operation create;
  create.kind = Operation::Kind::kCreate;
  create.group = group;
  create.template_path = std::string(VIRTSCALE_SOURCE_DIR) + "/config/templates/demo.xml";
  OperationResult r = actuator.Execute(create);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.domain, group + "-1");
  virDomainPtr dom = virDomainLookupByName(conn.get(), r.domain.c_str());
  ASSERT_NE(dom, nullptr);
  EXPECT_EQ(virDomainIsActive(dom), 1);
  virDomainFree(dom);
  Operation remove;
  remove.kind = Operation::Kind::kDelete;
  remove.group = group;
  remove.domain = r.domain;
  OperationResult deleted = actuator.Execute(remove);
  ASSERT_TRUE(deleted.ok) << deleted.error;
  dom = virDomainLookupByName(conn.get(), r.domain.c_str());
  EXPECT_EQ(dom, nullptr);
  if (dom) virDomainFree(dom);
}

TEST(PickDomainNameTest, SmallestFreeNumber) {
  EXPECT_EQ(LibvirtActuator::PickDomainName("web", {}), "web-1");
  EXPECT_EQ(LibvirtActuator::PickDomainName("web", {"web-1", "web-2", "web-4", "db-3"}), "web-3");
  EXPECT_EQ(LibvirtActuator::PickDomainName("web", {"web-01", "web-x", "web"}), "web-1");
}

TEST(OperationKindNameTest, Names) {
  EXPECT_STREQ(OperationKindName(Operation::Kind::kStart), "start");
  EXPECT_STREQ(OperationKindName(Operation::Kind::kCreate), "create");
  EXPECT_STREQ(OperationKindName(Operation::Kind::kStop), "stop");
  EXPECT_STREQ(OperationKindName(Operation::Kind::kDelete), "delete");
}

}  // namespace
}  // namespace virtscale::autoscale
