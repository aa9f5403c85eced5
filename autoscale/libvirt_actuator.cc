#include "autoscale/libvirt_actuator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libvirt/virterror.h>

#include <exception>
#include <memory>
#include <optional>
#include <pugixml.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"
#include "common/log.h"

namespace virtscale::autoscale {
namespace {

struct DomainDeleter {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
struct PoolDeleter {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolDeleter {
  void operator()(virStorageVolPtr v) const { virStorageVolFree(v); }
};
struct CharDeleter {
  void operator()(char* s) const { free(s); }  // libvirt strings are malloc'ed
};
using DomainPtr = std::unique_ptr<virDomain, DomainDeleter>;
using PoolPtr = std::unique_ptr<virStoragePool, PoolDeleter>;
using VolPtr = std::unique_ptr<virStorageVol, VolDeleter>;
using CharPtr = std::unique_ptr<char, CharDeleter>;

bool DomainExists(virConnectPtr conn, const std::string& name) {
  DomainPtr dom(virDomainLookupByName(conn, name.c_str()));
  return dom != nullptr;
}

std::optional<std::set<std::string>> ListDomainNames(virConnectPtr conn) {
  virDomainPtr* domains = nullptr;
  int n = virConnectListAllDomains(conn, &domains, 0);
  if (n < 0) return std::nullopt;
  std::set<std::string> names;
  for (int i = 0; i < n; ++i) {
    if (const char* name = virDomainGetName(domains[i])) names.insert(name);
    virDomainFree(domains[i]);
  }
  free(domains);
  return names;
}

// The <target><format type> of a volume's XML; "raw" when absent.
std::string VolumeFormat(virStorageVolPtr vol) {
  CharPtr xml(virStorageVolGetXMLDesc(vol, 0));
  if (!xml) return "raw";
  pugi::xml_document doc;
  doc.load_string(xml.get());
  std::string format =
      doc.child("volume").child("target").child("format").attribute("type").value();
  return format.empty() ? "raw" : format;
}

std::string NewVolumeXml(const std::string& name, unsigned long long capacity,
                         const std::string& format, const std::string* backing_path,
                         const std::string& backing_format) {
  pugi::xml_document doc;
  pugi::xml_node volume = doc.append_child("volume");
  volume.append_child("name").text().set(name.c_str());
  pugi::xml_node cap = volume.append_child("capacity");
  cap.append_attribute("unit").set_value("bytes");
  cap.text().set(capacity);
  volume.append_child("target").append_child("format").append_attribute("type").set_value(
      format.c_str());
  if (backing_path) {
    pugi::xml_node backing = volume.append_child("backingStore");
    backing.append_child("path").text().set(backing_path->c_str());
    backing.append_child("format").append_attribute("type").set_value(backing_format.c_str());
  }
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

}  // namespace

struct LibvirtActuator::Outcome {
  bool ok = false;
  std::string error;
  std::string detail;  // logged on success, e.g. "already running"
  static Outcome Ok(std::string detail = "") { return {true, "", std::move(detail)}; }
  static Outcome Fail(std::string error) { return {false, std::move(error), ""}; }
};

LibvirtActuator::LibvirtActuator(ConnectionProvider provider, Options options)
    : provider_(std::move(provider)),
      options_(std::move(options)),
      random_(MakeSystemRandomSource()) {
  if (!options_.now_unix) {
    options_.now_unix = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  if (options_.max_name_attempts < 1) options_.max_name_attempts = 1;
}

std::string LibvirtActuator::PickDomainName(const std::string& group,
                                            const std::set<std::string>& used) {
  for (unsigned long n = 1;; ++n) {
    std::string name = fmt::format("{}-{}", group, n);
    if (!used.contains(name)) return name;
  }
}

std::string LibvirtActuator::ErrorText(std::string_view what) {
  LibvirtError error = LastLibvirtError();
  // A storage I/O error (VIR_ERR_SYSTEM_ERROR from the storage driver) is no
  // sign of a dead connection.
  if (error.connection_lost && error.domain != VIR_FROM_STORAGE && options_.on_connection_error) {
    options_.on_connection_error();
  }
  return fmt::format("{}: {}", what, error.message);
}

OperationResult LibvirtActuator::Execute(const Operation& op) {
  auto started = std::chrono::steady_clock::now();
  OperationResult result;
  result.domain = op.domain;
  Outcome outcome;
  try {
    ConnectionRef conn = provider_ ? provider_() : nullptr;
    if (!conn) {
      outcome = Outcome::Fail("libvirt down");
    } else {
      switch (op.kind) {
        case Operation::Kind::kStart:
          outcome = Start(conn.get(), op, result.domain);
          break;
        case Operation::Kind::kCreate:
          outcome = Create(conn.get(), op, result.domain);
          break;
        case Operation::Kind::kStop:
          outcome = Stop(conn.get(), op, result.domain);
          break;
        case Operation::Kind::kDelete:
          outcome = Delete(conn.get(), op, result.domain);
          break;
      }
    }
  } catch (const std::exception& e) {
    outcome = Outcome::Fail(fmt::format("internal error: {}", e.what()));
  }
  result.ok = outcome.ok;
  result.error = outcome.error;
  result.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::string duration = fmt::format("{:.3f}", result.duration_seconds);
  const char* kind = OperationKindName(op.kind);
  if (!result.ok) {
    LogWarn("actuator operation", {{"op", kind},
                                   {"group", op.group},
                                   {"domain", result.domain},
                                   {"result", "error"},
                                   {"duration_seconds", duration},
                                   {"error", result.error}});
  } else if (!outcome.detail.empty()) {
    LogInfo("actuator operation", {{"op", kind},
                                   {"group", op.group},
                                   {"domain", result.domain},
                                   {"result", "ok"},
                                   {"duration_seconds", duration},
                                   {"detail", outcome.detail}});
  } else {
    LogInfo("actuator operation", {{"op", kind},
                                   {"group", op.group},
                                   {"domain", result.domain},
                                   {"result", "ok"},
                                   {"duration_seconds", duration}});
  }
  return result;
}

LibvirtActuator::Outcome LibvirtActuator::Start(virConnectPtr conn, const Operation& op,
                                                std::string& /*domain*/) {
  DomainPtr dom(virDomainLookupByName(conn, op.domain.c_str()));
  if (!dom) return Outcome::Fail(ErrorText("lookup " + op.domain));
  int active = virDomainIsActive(dom.get());
  if (active < 0) return Outcome::Fail(ErrorText("state"));
  if (active == 1) return Outcome::Ok("already running");
  if (virDomainCreate(dom.get()) < 0) return Outcome::Fail(ErrorText("start"));
  return Outcome::Ok();
}

LibvirtActuator::Outcome LibvirtActuator::Stop(virConnectPtr conn, const Operation& op,
                                               std::string& /*domain*/) {
  DomainPtr dom(virDomainLookupByName(conn, op.domain.c_str()));
  if (!dom) return Outcome::Fail(ErrorText("lookup " + op.domain));
  bool forced = false;
  return StopDomain(dom.get(), op.shutdown_timeout, forced);
}

LibvirtActuator::Outcome LibvirtActuator::StopDomain(virDomainPtr dom, Duration timeout,
                                                     bool& forced) {
  forced = false;
  int active = virDomainIsActive(dom);
  if (active < 0) return Outcome::Fail(ErrorText("state"));
  if (active == 0) return Outcome::Ok("already stopped");

  std::string shutdown_error;
  int requested =
      options_.request_shutdown ? options_.request_shutdown(dom) : virDomainShutdown(dom);
  if (requested < 0) {
    // The driver or guest cannot take the request: nothing to wait for.
    shutdown_error = ErrorText("shutdown");
  } else {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int state = 0, reason = 0;
      if (virDomainGetState(dom, &state, &reason, 0) < 0) {
        return Outcome::Fail(ErrorText("state"));
      }
      if (state == VIR_DOMAIN_SHUTOFF) return Outcome::Ok();
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(options_.poll_interval, deadline - now));
    }
  }
  if (virDomainDestroy(dom) < 0) {
    std::string error = ErrorText("destroy");
    if (virDomainIsActive(dom) == 0) return Outcome::Ok("shut off while destroying");
    return Outcome::Fail(shutdown_error.empty() ? error : shutdown_error + "; " + error);
  }
  forced = true;
  return Outcome::Ok(shutdown_error.empty() ? fmt::format("destroyed after {} shutdown timeout",
                                                          FormatDuration(timeout))
                                            : "destroyed after " + shutdown_error);
}

LibvirtActuator::Outcome LibvirtActuator::UndefineDomain(virDomainPtr dom) {
  // Newest flags first; drivers reject flags they do not know (the test driver
  // only takes managed-save and snapshots-metadata). Without NVRAM, QEMU refuses
  // to undefine a UEFI domain.
  const unsigned int kFlagSets[] = {
      VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
          VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM,
      VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
      0,
  };
  std::string error;
  for (unsigned int flags : kFlagSets) {
    if (virDomainUndefineFlags(dom, flags) == 0) return Outcome::Ok();
    error = ErrorText("undefine");
    int code = LastLibvirtError().code;
    if (code != VIR_ERR_INVALID_ARG && code != VIR_ERR_NO_SUPPORT) break;
  }
  return Outcome::Fail(error);
}

LibvirtActuator::Outcome LibvirtActuator::Delete(virConnectPtr conn, const Operation& op,
                                                 std::string& /*domain*/) {
  DomainPtr dom(virDomainLookupByName(conn, op.domain.c_str()));
  if (!dom) return Outcome::Fail(ErrorText("lookup " + op.domain));

  CharPtr metadata(
      virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0));
  if (!metadata) {
    if (LastLibvirtError().code != VIR_ERR_NO_DOMAIN_METADATA) {
      return Outcome::Fail(
          fmt::format("refusing to delete domain {}: {}", op.domain, ErrorText("metadata")));
    }
    return Outcome::Fail(
        fmt::format("refusing to delete domain {}: not created by virtscale", op.domain));
  }
  std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(metadata.get());
  if (!meta) {
    return Outcome::Fail(fmt::format(
        "refusing to delete domain {}: not created by virtscale (unreadable metadata)", op.domain));
  }
  if (meta->group != op.group) {
    return Outcome::Fail(
        fmt::format("refusing to delete domain {}: created by virtscale for group '{}', not '{}'",
                    op.domain, meta->group, op.group));
  }
  std::vector<CreatedVolume> volumes = ParseRecordedVolumes(metadata.get());

  bool forced = false;
  Outcome stopped = StopDomain(dom.get(), op.shutdown_timeout, forced);
  if (!stopped.ok) return stopped;

  // A transient domain disappears when it stops; only persistent ones need undefining.
  if (virDomainIsPersistent(dom.get()) == 1) {
    Outcome undefined = UndefineDomain(dom.get());
    if (!undefined.ok) return undefined;
  }

  std::vector<std::string> failures;
  for (const CreatedVolume& volume : volumes) {
    PoolPtr pool(virStoragePoolLookupByName(conn, volume.pool.c_str()));
    VolPtr vol(pool ? virStorageVolLookupByName(pool.get(), volume.name.c_str()) : nullptr);
    if (!vol) {
      if (LastLibvirtError().code == VIR_ERR_NO_STORAGE_VOL) continue;  // already gone
      failures.push_back(ErrorText(fmt::format("volume {}/{}", volume.pool, volume.name)));
      continue;
    }
    if (virStorageVolDelete(vol.get(), 0) < 0) {
      failures.push_back(ErrorText(fmt::format("delete volume {}/{}", volume.pool, volume.name)));
    }
  }
  if (!failures.empty()) {
    return Outcome::Fail(
        fmt::format("domain undefined, but its volumes remain: {}", fmt::join(failures, "; ")));
  }
  std::string detail = fmt::format("{} volume(s) deleted", volumes.size());
  if (forced) detail += ", " + stopped.detail;
  return Outcome::Ok(detail);
}

LibvirtActuator::Outcome LibvirtActuator::Create(virConnectPtr conn, const Operation& op,
                                                 std::string& domain) {
  if (op.group.empty()) return Outcome::Fail("create: no group");
  if (op.template_path.empty()) return Outcome::Fail("create: no template");
  TemplateParseResult tmpl = DomainTemplate::Load(op.template_path);
  if (!tmpl.ok()) return Outcome::Fail("template: " + tmpl.error);
  std::optional<std::set<std::string>> used = ListDomainNames(conn);
  if (!used) return Outcome::Fail(ErrorText("list domains"));

  std::string last_error;
  for (int attempt = 0; attempt < options_.max_name_attempts; ++attempt) {
    std::string name = PickDomainName(op.group, *used);
    used->insert(name);
    bool clash = false;
    Outcome outcome = CreateNamed(conn, *tmpl.value, op, name, clash);
    domain = name;
    if (outcome.ok || !clash) return outcome;
    LogInfo("name taken, trying the next one", {{"group", op.group}, {"domain", name}});
    last_error = outcome.error;
  }
  return Outcome::Fail(fmt::format("no free name after {} attempts; last: {}",
                                   options_.max_name_attempts, last_error));
}

LibvirtActuator::Outcome LibvirtActuator::CreateNamed(virConnectPtr conn,
                                                      const DomainTemplate& tmpl,
                                                      const Operation& op, const std::string& name,
                                                      bool& clash) {
  clash = false;
  std::vector<CreatedVolume> created;
  // Deletes the volumes this call made; appends any failure to `error`.
  auto drop_volumes = [&](std::string error) {
    for (const CreatedVolume& volume : created) {
      PoolPtr pool(virStoragePoolLookupByName(conn, volume.pool.c_str()));
      VolPtr vol(pool ? virStorageVolLookupByName(pool.get(), volume.name.c_str()) : nullptr);
      if (!vol || virStorageVolDelete(vol.get(), 0) < 0) {
        error += "; rollback: " +
                 ErrorText(fmt::format("delete volume {}/{}", volume.pool, volume.name));
      }
    }
    return Outcome::Fail(std::move(error));
  };

  for (const VolumeAnnotation& annotation : tmpl.volumes()) {
    std::string what = fmt::format("volume {}", annotation.target);
    PoolPtr pool(virStoragePoolLookupByName(conn, annotation.pool.c_str()));
    if (!pool) return drop_volumes(ErrorText(what + ": pool " + annotation.pool));
    VolPtr base(virStorageVolLookupByName(pool.get(), annotation.base.c_str()));
    if (!base) return drop_volumes(ErrorText(what + ": base " + annotation.base));
    virStorageVolInfo base_info{};
    CharPtr base_path(virStorageVolGetPath(base.get()));
    if (virStorageVolGetInfo(base.get(), &base_info) < 0 || !base_path) {
      return drop_volumes(ErrorText(what + ": base " + annotation.base));
    }
    std::string base_format = VolumeFormat(base.get());
    bool overlay = annotation.mode == VolumeAnnotation::Mode::kOverlay;
    std::string format = annotation.format.empty() ? base_format : annotation.format;
    std::string vol_name = annotation.VolumeName(name, format);
    std::string base_path_str = base_path.get();
    std::string xml = NewVolumeXml(vol_name, base_info.capacity, format,
                                   overlay ? &base_path_str : nullptr, base_format);
    VolPtr vol(overlay ? virStorageVolCreateXML(pool.get(), xml.c_str(), 0)
                       : virStorageVolCreateXMLFrom(pool.get(), xml.c_str(), base.get(), 0));
    if (!vol) {
      std::string error = ErrorText(fmt::format("create volume {}", vol_name));
      // A leftover volume of that name makes the name unusable: try the next one.
      VolPtr existing(virStorageVolLookupByName(pool.get(), vol_name.c_str()));
      clash = existing != nullptr;
      return drop_volumes(std::move(error));
    }
    CreatedVolume record;
    record.target = annotation.target;
    record.pool = annotation.pool;
    record.name = vol_name;
    CharPtr path(virStorageVolGetPath(vol.get()));
    virStorageVolInfo info{};
    if (!path || virStorageVolGetInfo(vol.get(), &info) < 0) {
      std::string error = ErrorText(fmt::format("volume {}", vol_name));
      created.push_back(std::move(record));
      return drop_volumes(std::move(error));
    }
    record.path = path.get();
    record.format = format;
    record.block = info.type == VIR_STORAGE_VOL_BLOCK;
    created.push_back(std::move(record));
  }

  std::string xml;
  {
    std::lock_guard lock(random_mu_);
    xml = tmpl.Render({.name = name,
                       .group = op.group,
                       .template_path = op.template_path,
                       .created_at_unix = options_.now_unix()},
                      created, random_);
  }
  if (options_.before_define) options_.before_define(conn, name);
  DomainPtr dom(virDomainDefineXML(conn, xml.c_str()));
  if (!dom) {
    std::string error = ErrorText("define");
    clash = DomainExists(conn, name);
    return drop_volumes(std::move(error));
  }
  if (options_.before_start) options_.before_start(dom.get());
  if (virDomainCreate(dom.get()) < 0) {
    std::string error = ErrorText("start");
    if (virDomainIsActive(dom.get()) == 1 && virDomainDestroy(dom.get()) < 0) {
      error += "; rollback: " + ErrorText("destroy");
    }
    if (Outcome undefined = UndefineDomain(dom.get()); !undefined.ok) {
      error += "; rollback: " + undefined.error;
    }
    return drop_volumes(std::move(error));
  }
  return Outcome::Ok(created.empty() ? "" : fmt::format("{} volume(s) created", created.size()));
}

}  // namespace virtscale::autoscale
