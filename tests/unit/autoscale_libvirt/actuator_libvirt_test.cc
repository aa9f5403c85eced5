// LibvirtActuator against libvirt's in-process test driver: every operation
// really defines, starts, stops and undefines domains and creates/deletes
// storage volumes, and the outcome is checked with plain libvirt calls.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <pugixml.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/libvirt/disk_sources.h"
#include "autoscale/libvirt/libvirt_actuator.h"
#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"
#include "common/sha256.h"

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

// The template as the rule loader hands it to the planner: parsed once.
std::shared_ptr<const DomainTemplate> LoadTemplate(const std::string& path) {
  TemplateParseResult parsed = DomainTemplate::Load(path);
  EXPECT_TRUE(parsed.ok()) << parsed.error;
  if (!parsed.ok()) return nullptr;
  return std::make_shared<const DomainTemplate>(std::move(*parsed.value));
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
    op.tmpl = LoadTemplate(template_path);
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
  std::string Uuid(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return "";
    char buf[VIR_UUID_STRING_BUFLEN] = {};
    virDomainGetUUIDString(dom, buf);
    virDomainFree(dom);
    return buf;
  }
  // `virsh dumpxml NAME | edit name, drop uuid | virsh define`: a copy that
  // carries the original's metadata (and so its volume list) and its disks.
  void DefineCopy(const std::string& original, const std::string& copy) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), original.c_str());
    ASSERT_NE(dom, nullptr);
    char* xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    virDomainFree(dom);
    ASSERT_NE(xml, nullptr);
    pugi::xml_document doc;
    doc.load_string(xml);
    free(xml);
    pugi::xml_node root = doc.child("domain");
    root.child("name").text().set(copy.c_str());
    root.remove_child("uuid");
    std::ostringstream out;
    doc.save(out);
    virDomainPtr defined = virDomainDefineXML(conn_.get(), out.str().c_str());
    ASSERT_NE(defined, nullptr) << virGetLastErrorMessage();
    virDomainFree(defined);
  }
  // The scale stamp as libvirt stores it (flags: VIR_DOMAIN_AFFECT_*).
  // A metadata element of `name`, as libvirt returns it.
  std::optional<std::string> Element(const std::string& name, const char* ns, unsigned int flags) {
    virDomainPtr dom = virDomainLookupByName(conn_.get(), name.c_str());
    if (!dom) return std::nullopt;
    char* xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, ns, flags);
    virDomainFree(dom);
    if (!xml) return std::nullopt;
    std::string text(xml);
    free(xml);
    return text;
  }
  std::optional<ScaleStamp> Stamp(const std::string& name, unsigned int flags = 0) {
    std::optional<std::string> xml = Element(name, kScaleStampNamespace, flags);
    return xml ? ParseScaleStamp(*xml) : std::nullopt;
  }
  std::optional<LifecycleStamp> Lifecycle(const std::string& name, unsigned int flags = 0) {
    std::optional<std::string> xml = Element(name, kLifecycleNamespace, flags);
    return xml ? ParseLifecycleStamp(*xml) : std::nullopt;
  }
  void CreateVolume(const std::string& name) {
    virStoragePoolPtr pool = virStoragePoolLookupByName(conn_.get(), "default-pool");
    ASSERT_NE(pool, nullptr);
    std::string xml = "<volume><name>" + name +
                      "</name><capacity unit='MiB'>1</capacity>"
                      "<target><format type='qcow2'/></target></volume>";
    virStorageVolPtr vol = virStorageVolCreateXML(pool, xml.c_str(), 0);
    virStoragePoolFree(pool);
    ASSERT_NE(vol, nullptr) << virGetLastErrorMessage();
    virStorageVolFree(vol);
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
  // For refresh: the SHA-256 of the template file as it was loaded.
  std::ifstream template_file(demo_template_);
  std::stringstream template_text;
  template_text << template_file.rdbuf();
  EXPECT_EQ(meta->template_hash, Sha256Hex(template_text.str()));
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
  // A member the other group created may be deleted by it.
  OperationResult created = actuator.Execute(Create(demo_template_, "other"));
  ASSERT_TRUE(created.ok) << created.error;
  ASSERT_EQ(created.domain, "other-2");
  OperationResult refused = actuator.Execute(On(Operation::Kind::kDelete, "other-2", "web"));
  EXPECT_FALSE(refused.ok);
  EXPECT_TRUE(Exists("other-2"));
  OperationResult own = actuator.Execute(On(Operation::Kind::kDelete, "other-2", "other"));
  EXPECT_TRUE(own.ok) << own.error;
  EXPECT_FALSE(Exists("other-2"));
}

TEST_F(LibvirtActuatorTest, MemberWithoutARecordedUuidIsNeverDeleted) {
  // other-1's ownership element is 0.1.0's: group, no <virtscale:uuid>.
  LibvirtActuator actuator = MakeActuator();
  int before = State("other-1");
  OperationResult r = actuator.Execute(On(Operation::Kind::kDelete, "other-1", "other"));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error,
            "refusing to delete domain other-1: created before ownership records carried a UUID; "
            "never deleted — see CHANGELOG");
  EXPECT_EQ(State("other-1"), before);  // not even stopped
  // It is still a member for everything else: stop and start work.
  EXPECT_TRUE(actuator.Execute(On(Operation::Kind::kStop, "other-1", "other")).ok);
  EXPECT_EQ(State("other-1"), VIR_DOMAIN_SHUTOFF);
  EXPECT_TRUE(actuator.Execute(On(Operation::Kind::kStart, "other-1", "other")).ok);
  EXPECT_EQ(State("other-1"), VIR_DOMAIN_RUNNING);
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

TEST_F(LibvirtActuatorTest, CreateWithoutAParsedTemplateFails) {
  LibvirtActuator actuator = MakeActuator();
  Operation op = Create(demo_template_);
  op.tmpl = nullptr;  // only the validated in-memory template is ever used
  OperationResult r = actuator.Execute(op);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "create: no template");
  EXPECT_FALSE(Exists("web-2"));
}

TEST_F(LibvirtActuatorTest, CreateUsesTheTemplateParsedAtLoadNotTheFile) {
  LibvirtActuator actuator = MakeActuator();
  Operation op = Create(overlay_template_);
  Write("overlay.xml", "<domain>edited after the reload, not valid</domain>");
  OperationResult r = actuator.Execute(op);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(Volume(r.domain + "-vda.qcow2").has_value());
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

TEST_F(LibvirtActuatorTest, CreatedMemberRecordsItsOwnUuid) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(Metadata(r.domain).value_or(""));
  ASSERT_TRUE(meta.has_value());
  EXPECT_FALSE(meta->uuid.empty());
  EXPECT_EQ(meta->uuid, Uuid(r.domain));
}

TEST_F(LibvirtActuatorTest, CopyOfAnOwnedMemberIsRefusedAndTheOriginalsVolumeSurvives) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.domain, "web-2");
  DefineCopy("web-2", "web-7");
  ASSERT_TRUE(Exists("web-7"));
  std::string original = Uuid("web-2"), copy = Uuid("web-7");
  ASSERT_NE(original, copy);

  OperationResult refused = actuator.Execute(On(Operation::Kind::kDelete, "web-7"));
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.error, "refusing to delete domain web-7: its ownership record names UUID " +
                               original + ", the domain is " + copy + " (a copy?)");
  EXPECT_TRUE(Exists("web-7"));
  EXPECT_TRUE(Exists("web-2"));
  EXPECT_TRUE(Volume("web-2-vda.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, VolumeAlsoUsedByAnotherDomainIsKept) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  DefineCopy("web-2", "web-7");  // its disk is web-2's volume
  OperationResult deleted = actuator.Execute(On(Operation::Kind::kDelete, "web-2"));
  ASSERT_TRUE(deleted.ok) << deleted.error;
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_TRUE(Exists("web-7"));
  EXPECT_TRUE(Volume("web-2-vda.qcow2").has_value());  // web-7 still boots from it
}

TEST_F(LibvirtActuatorTest, VolumeThatBacksAnotherVolumeIsKept) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  ASSERT_TRUE(r.ok) << r.error;
  // Someone made an overlay on top of web-2's disk (a linked clone).
  virStoragePoolPtr pool = virStoragePoolLookupByName(conn_.get(), "default-pool");
  ASSERT_NE(pool, nullptr);
  const char* xml =
      "<volume><name>linked.qcow2</name><capacity unit='MiB'>64</capacity>"
      "<target><format type='qcow2'/></target><backingStore>"
      "<path>/default-pool/web-2-vda.qcow2</path><format type='qcow2'/></backingStore></volume>";
  virStorageVolPtr vol = virStorageVolCreateXML(pool, xml, 0);
  virStoragePoolFree(pool);
  ASSERT_NE(vol, nullptr) << virGetLastErrorMessage();
  virStorageVolFree(vol);
  OperationResult deleted = actuator.Execute(On(Operation::Kind::kDelete, r.domain));
  ASSERT_TRUE(deleted.ok) << deleted.error;
  EXPECT_FALSE(Exists(r.domain));
  EXPECT_TRUE(Volume("web-2-vda.qcow2").has_value());
  EXPECT_TRUE(Volume("linked.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, RecordedVolumeThatIsNotADiskOfTheDomainIsKept) {
  LibvirtActuator actuator = MakeActuator();
  CreateVolume("stranger.qcow2");
  OperationResult r = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(r.ok) << r.error;
  // An ownership record edited to list a volume the domain does not use.
  VirtscaleMetadata meta = ParseVirtscaleMetadata(Metadata(r.domain).value_or("")).value();
  std::string xml = "<instance><group>web</group><uuid>" + meta.uuid +
                    "</uuid><volume target='vdz' pool='default-pool' name='stranger.qcow2'/>"
                    "</instance>";
  virDomainPtr dom = virDomainLookupByName(conn_.get(), r.domain.c_str());
  ASSERT_EQ(
      virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), "virtscale",
                           kMetadataNamespace, VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_AFFECT_LIVE),
      0)
      << virGetLastErrorMessage();
  virDomainFree(dom);
  ASSERT_EQ(ParseRecordedVolumes(Metadata(r.domain).value_or("")).size(), 1u);
  OperationResult deleted = actuator.Execute(On(Operation::Kind::kDelete, r.domain));
  ASSERT_TRUE(deleted.ok) << deleted.error;
  EXPECT_FALSE(Exists(r.domain));
  EXPECT_TRUE(Volume("stranger.qcow2").has_value());
}

TEST_F(LibvirtActuatorTest, ScaleTimesRoundTripAndKeepTheOtherDirection) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kStop, "web-1")).ok);  // a stopped member
  EXPECT_EQ(actuator.RecordScaleTime("web", Direction::kUp, 1764194400, {r.domain, "web-1"}), "");
  EXPECT_EQ(actuator.RecordScaleTime("web", Direction::kDown, 1764194500, {r.domain}), "");
  EXPECT_EQ(actuator.RecordScaleTime("web", Direction::kUp, 1000, {r.domain}), "");  // older

  std::optional<ScaleStamp> live = Stamp(r.domain);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->group, "web");
  EXPECT_EQ(live->last_up_unix, 1764194400);
  EXPECT_EQ(live->last_down_unix, 1764194500);
  std::optional<ScaleStamp> config =
      Stamp(r.domain, VIR_DOMAIN_AFFECT_CONFIG);  // survives a restart
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->last_down_unix, 1764194500);
  std::optional<ScaleStamp> stopped = Stamp("web-1", VIR_DOMAIN_AFFECT_CONFIG);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(stopped->last_up_unix, 1764194400);
  EXPECT_EQ(stopped->last_down_unix, 0);
  // The ownership element is a different one and stays as it was.
  EXPECT_EQ(ParseVirtscaleMetadata(Metadata(r.domain).value_or(""))->uuid, Uuid(r.domain));
  EXPECT_FALSE(Metadata("web-1").has_value());

  EXPECT_THAT(actuator.RecordScaleTime("web", Direction::kUp, 5, {"web-99"}),
              StartsWith("web-99: lookup web-99: "));
}

TEST_F(LibvirtActuatorTest, LifecycleStampsAreStoredInTheConfigOfRunningAndStoppedMembers) {
  LibvirtActuator actuator = MakeActuator();
  OperationResult r = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_TRUE(actuator.Execute(On(Operation::Kind::kStop, "web-1")).ok);
  const LifecycleStamp paused{"web", true, 1764194400123, false, 0};
  const LifecycleStamp guarded{"web", true, 1764194400123, true, 1764194400200};
  EXPECT_EQ(actuator.RecordLifecycle(r.domain, guarded), "");
  EXPECT_EQ(actuator.RecordLifecycle("web-1", paused), "");
  for (unsigned flags : {0u, static_cast<unsigned>(VIR_DOMAIN_AFFECT_CONFIG)}) {
    std::optional<LifecycleStamp> running = Lifecycle(r.domain, flags);
    ASSERT_TRUE(running.has_value()) << flags;
    EXPECT_TRUE(running->paused);
    EXPECT_TRUE(running->is_protected);
    EXPECT_EQ(running->protected_changed_ms, 1764194400200);
  }
  std::optional<LifecycleStamp> stopped = Lifecycle("web-1", VIR_DOMAIN_AFFECT_CONFIG);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->paused);
  EXPECT_FALSE(stopped->is_protected);
  // Ownership and scale stamps are other elements and stay as they were.
  EXPECT_EQ(ParseVirtscaleMetadata(Metadata(r.domain).value_or(""))->uuid, Uuid(r.domain));
  EXPECT_THAT(actuator.RecordLifecycle("web-99", paused), StartsWith("lookup web-99: "));
}

// A shutdown request that never returns until the test lets it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  void Pass() {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
  }
  void WaitEntered() {
    std::unique_lock lock(mu);
    cv.wait(lock, [this] { return entered > 0; });
  }
};

TEST_F(LibvirtActuatorTest, HungCallTimesOut) {
  auto gate = std::make_shared<Gate>();
  LibvirtActuator::Options options;
  options.call_timeout = std::chrono::milliseconds(300);
  options.request_shutdown = [gate](virDomainPtr) {
    gate->Pass();
    return 0;
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  OperationResult r = actuator.Execute(On(Operation::Kind::kStop, created.domain));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "shutdown timed out after 300ms");
  EXPECT_EQ(actuator.stuck_calls(), 1u);
  EXPECT_EQ(State(created.domain), VIR_DOMAIN_RUNNING);  // not destroyed behind a hung call
  gate->Open();
  for (int i = 0; i < 200 && actuator.stuck_calls() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(actuator.stuck_calls(), 0u);
}

TEST_F(LibvirtActuatorTest, CancelStopsWaitingForAHungCall) {
  auto gate = std::make_shared<Gate>();
  LibvirtActuator::Options options;
  options.call_timeout = std::chrono::hours(1);  // only the cancel can end the wait
  options.cancel_grace = std::chrono::milliseconds(100);
  options.request_shutdown = [gate](virDomainPtr) {
    gate->Pass();
    return 0;
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  OperationResult r;
  std::thread worker([&] { r = actuator.Execute(On(Operation::Kind::kStop, created.domain)); });
  gate->WaitEntered();
  actuator.Cancel();
  worker.join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "cancelled (agent stopping) during shutdown");
  EXPECT_EQ(actuator.stuck_calls(), 1u);  // still inside libvirt, and known to be
  gate->Open();
  for (int i = 0; i < 200 && actuator.stuck_calls() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(actuator.stuck_calls(), 0u);
}

TEST_F(LibvirtActuatorTest, CancelEndsAStopOfAGuestThatIgnoresShutdown) {
  LibvirtActuator::Options options;
  auto gate = std::make_shared<Gate>();
  options.request_shutdown = [gate](virDomainPtr) {
    std::lock_guard lock(gate->mu);
    ++gate->entered;
    gate->cv.notify_all();
    return 0;  // accepted, but the guest never powers off
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  OperationResult created = actuator.Execute(Create(demo_template_));
  ASSERT_TRUE(created.ok) << created.error;
  Operation stop = On(Operation::Kind::kStop, created.domain);
  stop.shutdown_timeout = std::chrono::hours(1);
  OperationResult r;
  std::thread worker([&] { r = actuator.Execute(stop); });
  gate->WaitEntered();
  actuator.Cancel();
  actuator.Cancel();  // harmless
  worker.join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error,
            "cancelled (agent stopping) while waiting for " + created.domain + " to shut down");
  EXPECT_EQ(State(created.domain), VIR_DOMAIN_RUNNING);  // left to its graceful shutdown
  OperationResult later = actuator.Execute(On(Operation::Kind::kStart, "web-1"));
  EXPECT_FALSE(later.ok);
  EXPECT_EQ(later.error, "cancelled (agent stopping)");
}

TEST_F(LibvirtActuatorTest, CancelledCreateRollsBackWhatItMade) {
  LibvirtActuator::Options options;
  LibvirtActuator* self = nullptr;
  options.before_start = [&self](virDomainPtr) { self->Cancel(); };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  self = &actuator;
  int volumes_before = VolumeCount();
  OperationResult r = actuator.Execute(Create(overlay_template_));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.domain, "web-2");
  EXPECT_EQ(r.error, "cancelled (agent stopping) before start");  // rollback succeeded
  EXPECT_FALSE(Exists("web-2"));
  EXPECT_FALSE(Volume("web-2-vda.qcow2").has_value());
  EXPECT_EQ(VolumeCount(), volumes_before);
}

TEST_F(LibvirtActuatorTest, ConcurrentCreatesGetDistinctNames) {
  LibvirtActuator::Options options;
  options.max_name_attempts = 1;  // a clash would fail: names must not collide at all
  // Hold every create between picking its name and defining, so all overlap.
  auto waiting = std::make_shared<std::atomic<int>>(0);
  options.before_define = [waiting](virConnectPtr, const std::string&) {
    ++*waiting;
    for (int i = 0; i < 500 && *waiting < 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  LibvirtActuator actuator = MakeActuator(std::move(options));
  Operation op = Create(overlay_template_);
  std::vector<OperationResult> results(4);
  std::vector<std::thread> threads;
  for (OperationResult& result : results) {
    threads.emplace_back([&actuator, &op, &result] { result = actuator.Execute(op); });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(waiting->load(), 4);
  std::set<std::string> names;
  for (const OperationResult& result : results) {
    ASSERT_TRUE(result.ok) << result.error;
    names.insert(result.domain);
    EXPECT_TRUE(Volume(result.domain + "-vda.qcow2").has_value()) << result.domain;
  }
  EXPECT_EQ(names, (std::set<std::string>{"web-2", "web-3", "web-4", "web-5"}));
}

TEST_F(LibvirtActuatorTest, CleanupDeletesOnlyUnusedVolumesNamedLikeAMembers) {
  LibvirtActuator actuator = MakeActuator();
  ASSERT_TRUE(actuator.Execute(Create(overlay_template_)).ok);  // web-2 uses web-2-vda.qcow2
  CreateVolume("web-5-vda.qcow2");                              // a killed create's leftover
  CreateVolume("web-6-vdb.qcow2");                              // no such disk in the template
  CreateVolume("web-x-vda.qcow2");                              // not a member's name
  CreateVolume("db-3-vda.qcow2");                               // not this group's
  CreateVolume("web-8-vda.qcow2");
  // Defined, never started: a complete stopped member, and its disk with it.
  std::string xml =
      "<domain type='test'><name>web-8</name><memory>65536</memory><os><type>hvm</type></os>"
      "<devices><disk type='file' device='disk'><source file='/default-pool/web-8-vda.qcow2'/>"
      "<target dev='vda'/></disk></devices></domain>";
  virDomainPtr dom = virDomainDefineXML(conn_.get(), xml.c_str());
  ASSERT_NE(dom, nullptr) << virGetLastErrorMessage();
  virDomainFree(dom);

  RuleSet rules;
  GroupRule group;
  group.name = "web";
  group.template_path = overlay_template_;
  group.template_doc = LoadTemplate(overlay_template_);
  rules.groups.push_back(group);
  GroupRule dry = group;
  dry.name = "db";
  dry.dry_run = true;  // never acted on, not even cleaned
  rules.groups.push_back(dry);

  LeftoverCleanup cleaned = actuator.CleanupLeftovers(rules);
  EXPECT_EQ(cleaned.error, "");
  EXPECT_EQ(cleaned.deleted, (std::vector<std::string>{"default-pool/web-5-vda.qcow2"}));
  EXPECT_FALSE(Volume("web-5-vda.qcow2").has_value());
  for (const char* kept : {"web-2-vda.qcow2", "web-6-vdb.qcow2", "web-x-vda.qcow2",
                           "db-3-vda.qcow2", "web-8-vda.qcow2", "base.qcow2"}) {
    EXPECT_TRUE(Volume(kept).has_value()) << kept;
  }
  EXPECT_TRUE(Exists("web-8"));
  EXPECT_EQ(State("web-8"), VIR_DOMAIN_SHUTOFF);
}

TEST(LeftoverNames, DiskSourcesIncludeBackingFilesAndPoolVolumes) {
  std::vector<DiskSource> sources = ParseDiskSources(R"(<domain><devices>
    <disk type='file'><source file='/p/top.qcow2'/>
      <backingStore type='file'><source file='/p/base.qcow2'/></backingStore></disk>
    <disk type='volume'><source pool='default' volume='web-3-vdb.raw'/></disk>
    <disk type='block'><source dev='/dev/vg/web-3'/></disk>
  </devices></domain>)");
  ASSERT_EQ(sources.size(), 4u);
  EXPECT_FALSE(sources[0].backing);
  EXPECT_TRUE(sources[1].backing);
  EXPECT_TRUE(UsesVolume(sources, "/p/base.qcow2", "x", "y"));
  EXPECT_TRUE(UsesVolume(sources, "/elsewhere", "default", "web-3-vdb.raw"));
  EXPECT_TRUE(UsesVolume(sources, "/dev/vg/web-3", "", ""));
  EXPECT_FALSE(UsesVolume(sources, "/p/other.qcow2", "other", "web-3-vdb.raw"));
  EXPECT_TRUE(ParseDiskSources("<domain>").empty());
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
  create.tmpl = LoadTemplate(create.template_path);
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
