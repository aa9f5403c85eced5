#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "autoscale/domain_template.h"
#include "collectors/domain_metadata.h"

namespace virtscale::autoscale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kTemplate = R"(<domain type='kvm' id='7'>
  <name>golden</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <metadata>
    <app:owner xmlns:app="http://example.com/app">team-a</app:owner>
    <old:instance xmlns:old="http://virtscale.org/xmlns/domain/1.0"><old:group>stale</old:group></old:instance>
    <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0" target="vda" pool="default" base="base.qcow2"/>
  </metadata>
  <memory unit='MiB'>512</memory>
  <vcpu>2</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/images/golden.img'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/images/tools.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
      <target dev='vnet3'/>
    </interface>
    <interface type='network'>
      <source network='backend'/>
    </interface>
  </devices>
</domain>)";

constexpr const char* kMinimal =
    "<domain type='test'><name>t</name><memory>65536</memory><os><type>hvm</type></os></domain>";

RandomSource Seeded(uint64_t seed) {
  return [engine = std::mt19937_64(seed)]() mutable { return engine(); };
}

DomainTemplate MustParse(std::string_view xml) {
  TemplateParseResult parsed = DomainTemplate::Parse(xml);
  EXPECT_TRUE(parsed.ok()) << parsed.error;
  return *parsed.value;
}

struct Rendered {
  pugi::xml_document doc;
  pugi::xml_node root;
  explicit Rendered(const std::string& xml) {
    EXPECT_TRUE(doc.load_string(xml.c_str())) << xml;
    root = doc.document_element();
  }
  std::string InstanceXml() const {
    for (pugi::xml_node child : root.child("metadata").children()) {
      if (std::string_view(child.name()).ends_with("instance")) {
        std::ostringstream out;
        child.print(out, "", pugi::format_raw);
        return out.str();
      }
    }
    return "";
  }
  std::vector<std::string> Macs() const {
    std::vector<std::string> macs;
    for (pugi::xml_node iface : root.child("devices").children("interface")) {
      macs.push_back(iface.child("mac").attribute("address").value());
    }
    return macs;
  }
};

const RenderParams kParams{.name = "web-3",
                           .group = "web",
                           .template_path = "/etc/virtscale/templates/web.xml",
                           .created_at_unix = 1764194400};

TEST(DomainTemplateRenderTest, SetsNameFreshUuidAndDropsId) {
  DomainTemplate tmpl = MustParse(kTemplate);
  Rendered out(tmpl.Render(kParams, {}, Seeded(1)));
  EXPECT_STREQ(out.root.child_value("name"), "web-3");
  EXPECT_FALSE(out.root.attribute("id"));
  std::string uuid = out.root.child_value("uuid");
  EXPECT_TRUE(std::regex_match(
      uuid, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << uuid;
  EXPECT_NE(uuid, "11111111-2222-3333-4444-555555555555");
  int uuids = 0;
  for (pugi::xml_node n : out.root.children("uuid")) uuids += n ? 1 : 0;
  EXPECT_EQ(uuids, 1);
}

TEST(DomainTemplateRenderTest, EveryRenderGetsADifferentUuidAndMacs) {
  DomainTemplate tmpl = MustParse(kTemplate);
  RandomSource random = MakeSystemRandomSource();
  std::set<std::string> uuids, macs;
  for (int i = 0; i < 20; ++i) {
    Rendered out(tmpl.Render(kParams, {}, random));
    uuids.insert(out.root.child_value("uuid"));
    for (const std::string& mac : out.Macs()) macs.insert(mac);
  }
  EXPECT_EQ(uuids.size(), 20u);
  EXPECT_EQ(macs.size(), 40u);  // two interfaces per render
}

TEST(DomainTemplateRenderTest, EveryInterfaceGetsALocalUnicastMacAndNoTargetDev) {
  DomainTemplate tmpl = MustParse(kTemplate);
  Rendered out(tmpl.Render(kParams, {}, Seeded(2)));
  std::vector<std::string> macs = out.Macs();
  ASSERT_EQ(macs.size(), 2u);  // the second interface had no <mac>
  for (const std::string& mac : macs) {
    EXPECT_TRUE(std::regex_match(mac, std::regex("52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}")))
        << mac;
  }
  EXPECT_NE(macs[0], macs[1]);
  EXPECT_NE(macs[0], "aa:bb:cc:dd:ee:ff");
  for (pugi::xml_node iface : out.root.child("devices").children("interface")) {
    EXPECT_FALSE(iface.child("target")) << "host tap names must not be copied";
  }
}

TEST(DomainTemplateRenderTest, MacsStayDistinctEvenWithADegenerateRandomSource) {
  DomainTemplate tmpl = MustParse(kTemplate);
  Rendered out(tmpl.Render(kParams, {}, [] { return uint64_t{42}; }));
  std::vector<std::string> macs = out.Macs();
  ASSERT_EQ(macs.size(), 2u);
  EXPECT_NE(macs[0], macs[1]);
}

TEST(DomainTemplateRenderTest, AddsOwnershipMetadataAndKeepsForeignMetadata) {
  DomainTemplate tmpl = MustParse(kTemplate);
  std::string xml = tmpl.Render(kParams, {}, Seeded(3));
  Rendered out(xml);
  std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(out.InstanceXml());
  ASSERT_TRUE(meta.has_value()) << xml;
  EXPECT_EQ(meta->group, "web");
  EXPECT_EQ(meta->template_path, "/etc/virtscale/templates/web.xml");
  EXPECT_EQ(meta->created_at_unix, 1764194400);
  EXPECT_EQ(meta->template_hash, tmpl.content_hash());
  EXPECT_THAT(xml, HasSubstr("team-a"));                 // other applications' metadata stays
  EXPECT_THAT(xml, Not(HasSubstr("stale")));             // a copied ownership element does not
  EXPECT_THAT(xml, Not(HasSubstr(kTemplateNamespace)));  // annotations are removed
  EXPECT_THAT(xml, HasSubstr("/images/golden.img"));     // no volume given: source unchanged
}

TEST(DomainTemplateRenderTest, ContentHashIsTheSha256OfTheTemplateText) {
  const DomainTemplate tmpl = MustParse(kMinimal);
  EXPECT_EQ(tmpl.content_hash().size(), 64u);
  EXPECT_EQ(MustParse(kMinimal).content_hash(), tmpl.content_hash());
  // Any edit changes it, whitespace included: the hash is of the bytes as loaded.
  EXPECT_NE(MustParse(std::string(kMinimal) + "\n").content_hash(), tmpl.content_hash());
}

TEST(DomainTemplateRenderTest, CreatesMetadataWhenTheTemplateHasNone) {
  DomainTemplate tmpl = MustParse(kMinimal);
  Rendered out(
      tmpl.Render({.name = "demo-1", .group = "demo", .template_path = "", .created_at_unix = 0},
                  {}, Seeded(4)));
  ASSERT_TRUE(out.root.child("metadata"));
  std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(out.InstanceXml());
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->group, "demo");
  EXPECT_STREQ(out.root.child_value("name"), "demo-1");
}

TEST(DomainTemplateRenderTest, PointsTheAnnotatedDiskAtTheCreatedVolumeAndRecordsIt) {
  DomainTemplate tmpl = MustParse(kTemplate);
  ASSERT_EQ(tmpl.volumes().size(), 1u);
  EXPECT_EQ(tmpl.volumes()[0].target, "vda");
  EXPECT_EQ(tmpl.volumes()[0].mode, VolumeAnnotation::Mode::kOverlay);
  EXPECT_EQ(tmpl.volumes()[0].format, "qcow2");
  EXPECT_EQ(tmpl.volumes()[0].VolumeName("web-3", "qcow2"), "web-3-vda.qcow2");

  CreatedVolume volume{.target = "vda",
                       .pool = "default",
                       .name = "web-3-vda.qcow2",
                       .path = "/var/lib/libvirt/images/web-3-vda.qcow2",
                       .format = "qcow2",
                       .block = false};
  Rendered out(tmpl.Render(kParams, {volume}, Seeded(5)));
  pugi::xml_node vda = out.root.child("devices").find_child_by_attribute("disk", "device", "disk");
  EXPECT_STREQ(vda.attribute("type").value(), "file");
  EXPECT_STREQ(vda.child("source").attribute("file").value(),
               "/var/lib/libvirt/images/web-3-vda.qcow2");
  EXPECT_STREQ(vda.child("driver").attribute("type").value(), "qcow2");
  EXPECT_STREQ(vda.child("driver").attribute("name").value(), "qemu");
  EXPECT_FALSE(vda.child("backingStore"));
  pugi::xml_node cdrom =
      out.root.child("devices").find_child_by_attribute("disk", "device", "cdrom");
  EXPECT_STREQ(cdrom.child("source").attribute("file").value(), "/images/tools.iso");

  std::vector<CreatedVolume> recorded = ParseRecordedVolumes(out.InstanceXml());
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].pool, "default");
  EXPECT_EQ(recorded[0].name, "web-3-vda.qcow2");
  EXPECT_EQ(recorded[0].target, "vda");
}

TEST(DomainTemplateRenderTest, BlockVolumesBecomeBlockDisks) {
  DomainTemplate tmpl = MustParse(kTemplate);
  CreatedVolume volume{.target = "vda",
                       .pool = "vg",
                       .name = "web-3-vda.raw",
                       .path = "/dev/vg/web-3-vda.raw",
                       .format = "raw",
                       .block = true};
  Rendered out(tmpl.Render(kParams, {volume}, Seeded(6)));
  pugi::xml_node vda = out.root.child("devices").find_child_by_attribute("disk", "device", "disk");
  EXPECT_STREQ(vda.attribute("type").value(), "block");
  EXPECT_STREQ(vda.child("source").attribute("dev").value(), "/dev/vg/web-3-vda.raw");
  EXPECT_FALSE(vda.child("source").attribute("file"));
}

TEST(ParseRecordedVolumesTest, ReadsUnprefixedMetadataAsLibvirtReturnsIt) {
  // virDomainGetMetadata returns the element without its prefix.
  std::vector<CreatedVolume> volumes = ParseRecordedVolumes(
      "<instance><group>web</group><volume target='vda' pool='p' name='web-1-vda.qcow2'/>"
      "<volume target='vdb' pool='' name='skipped'/></instance>");
  ASSERT_EQ(volumes.size(), 1u);
  EXPECT_EQ(volumes[0].name, "web-1-vda.qcow2");
  EXPECT_TRUE(ParseRecordedVolumes("<other><volume pool='p' name='n'/></other>").empty());
  EXPECT_TRUE(ParseRecordedVolumes("not xml").empty());
}

struct BadTemplate {
  std::string xml;
  std::string error;
  friend void PrintTo(const BadTemplate& t, std::ostream* os) { *os << t.xml; }
};

class DomainTemplateRejectTest : public ::testing::TestWithParam<BadTemplate> {};

TEST_P(DomainTemplateRejectTest, RejectsWithAClearMessage) {
  TemplateParseResult parsed = DomainTemplate::Parse(GetParam().xml);
  EXPECT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.error, HasSubstr(GetParam().error));
}

constexpr const char* kDiskVda =
    "<devices><disk type='file'><source file='/x'/><target dev='vda'/></disk></devices>";

std::string WithAnnotation(const std::string& attrs) {
  return "<domain type='kvm'><os><type>hvm</type></os><metadata><v:volume "
         "xmlns:v='http://virtscale.org/xmlns/template/1.0' " +
         attrs + "/></metadata>" + kDiskVda + "</domain>";
}

INSTANTIATE_TEST_SUITE_P(
    Templates, DomainTemplateRejectTest,
    ::testing::Values(
        BadTemplate{"<domain type='kvm'>\n<name>x</name>\n<os><type>hvm</type></os>",
                    "line 3: not well-formed XML"},
        BadTemplate{"<domain type='kvm'>\n<name>x</nome>\n</domain>",
                    "line 2: not well-formed XML"},
        BadTemplate{"", "not well-formed XML"},
        BadTemplate{"<network><name>x</name></network>", "root element is <network>"},
        BadTemplate{"<domain><os><type>hvm</type></os></domain>", "no type attribute"},
        BadTemplate{"<domain type='kvm'><name>x</name></domain>", "no <os><type>"},
        BadTemplate{WithAnnotation("target='vda' pool='p'"), "missing attribute 'base'"},
        BadTemplate{WithAnnotation("target='vda' pool='p' base='b' mode='copy'"),
                    "mode must be overlay or clone"},
        BadTemplate{WithAnnotation("target='vdz' pool='p' base='b'"),
                    "no <disk> with <target dev='vdz'>"},
        BadTemplate{WithAnnotation("target='vda' pool='p' base='b' size='1G'"),
                    "unknown attribute 'size'"},
        BadTemplate{WithAnnotation("target='vda' pool='p' base='b' format='raw'"),
                    "overlay needs a backing-capable format"},
        BadTemplate{"<domain type='kvm'><os><type>hvm</type></os><metadata><v:disk "
                    "xmlns:v='http://virtscale.org/xmlns/template/1.0'/></metadata></domain>",
                    "unknown virtscale template annotation <v:disk>"}));

TEST(DomainTemplateParseTest, AcceptsACloneAnnotationWithoutFormat) {
  TemplateParseResult parsed =
      DomainTemplate::Parse(WithAnnotation("target='vda' pool='p' base='b' mode='clone'"));
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  EXPECT_EQ(parsed.value->volumes()[0].mode, VolumeAnnotation::Mode::kClone);
  EXPECT_EQ(parsed.value->volumes()[0].format, "");  // resolved from the base volume later
}

class CheckDomainTemplateTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text) {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("virtscale-template-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(CheckDomainTemplateTest, MissingFile) {
  std::string path = (dir_ / "absent.xml").string();
  std::optional<std::string> error = CheckDomainTemplate(path);
  ASSERT_TRUE(error.has_value());
  EXPECT_THAT(*error, StartsWith(path + ": cannot read template"));
}

TEST_F(CheckDomainTemplateTest, SyntaxErrorIsReportedAsFileColonLine) {
  std::string path = Write("bad.xml", "<domain type='kvm'>\n  <name>x\n</domain>\n");
  std::optional<std::string> error = CheckDomainTemplate(path);
  ASSERT_TRUE(error.has_value());
  EXPECT_THAT(*error, StartsWith(path + ":3: not well-formed XML"));
}

TEST_F(CheckDomainTemplateTest, SemanticErrorNamesTheFile) {
  std::string path = Write("net.xml", "<network/>");
  std::optional<std::string> error = CheckDomainTemplate(path);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(*error, path + ": root element is <network>, expected <domain>");
}

TEST_F(CheckDomainTemplateTest, ValidTemplateIsClean) {
  EXPECT_EQ(CheckDomainTemplate(Write("ok.xml", kMinimal)), std::nullopt);
}

TEST(ShippedTemplatesTest, DemoAndWebTemplatesAreValid) {
  for (const char* name : {"demo.xml", "web.xml"}) {
    std::string path = std::string(VIRTSCALE_SOURCE_DIR) + "/config/templates/" + name;
    EXPECT_EQ(CheckDomainTemplate(path), std::nullopt) << name;
  }
  TemplateParseResult web =
      DomainTemplate::Load(std::string(VIRTSCALE_SOURCE_DIR) + "/config/templates/web.xml");
  ASSERT_TRUE(web.ok());
  ASSERT_EQ(web.value->volumes().size(), 1u);
  EXPECT_EQ(web.value->volumes()[0].base, "web-base.qcow2");
}

}  // namespace
}  // namespace virtscale::autoscale

namespace virtscale::autoscale {
namespace {

// A template with `count` nested <a> elements inside <description>.
std::string Nested(int count) {
  std::string xml = "<domain type='kvm'><name>t</name><os><type>hvm</type></os><description>";
  for (int i = 0; i < count; ++i) xml += "<a>";
  for (int i = 0; i < count; ++i) xml += "</a>";
  return xml + "</description></domain>";
}

TEST(DomainTemplateLimitsTest, DepthAndSizeAreBounded) {
  // domain > description > 62 <a>: 64 levels, the limit.
  EXPECT_TRUE(DomainTemplate::Parse(Nested(62)).ok());
  TemplateParseResult deep = DomainTemplate::Parse(Nested(100000));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error, "line 1: elements nest 100002 deep, more than the limit of 64");

  std::string big = "<domain type='kvm'><os><type>hvm</type></os><description>" +
                    std::string(kMaxTemplateBytes, 'x') + "</description></domain>";
  TemplateParseResult large = DomainTemplate::Parse(big);
  ASSERT_FALSE(large.ok());
  EXPECT_THAT(large.error, HasSubstr("more than the limit of 1 MiB"));
}

TEST(DomainTemplateLimitsTest, RenderingIsLinearInTheTemplateSize) {
  // The widest accepted shape: 64 deep and repeated until close to 1 MiB.
  std::string chain;
  for (int i = 0; i < 62; ++i) chain += "<a>";
  for (int i = 0; i < 62; ++i) chain += "</a>";
  std::string xml = "<domain type='kvm'><os><type>hvm</type></os><description>";
  while (xml.size() + chain.size() < kMaxTemplateBytes - 100) xml += chain;
  xml += "</description></domain>";
  DomainTemplate tmpl = MustParse(xml);
  const std::string out = tmpl.Render(kParams, {}, Seeded(1));
  // Indented output would be about 64 times the input; raw output adds only
  // the name, UUID and ownership element.
  EXPECT_LT(out.size(), xml.size() + 2048);
  const auto elements = [](const std::string& text) {
    size_t n = 0;
    for (size_t at = 0; (at = text.find("<a", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  EXPECT_EQ(elements(out), elements(xml));  // nothing was dropped
}

}  // namespace
}  // namespace virtscale::autoscale
