#include "autoscale/libvirt/libvirt_actuator.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <pugixml.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "autoscale/libvirt/disk_sources.h"
#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"
#include "common/log.h"

namespace virtscale::autoscale {
namespace {

using DomainRef = std::shared_ptr<virDomain>;
using PoolRef = std::shared_ptr<virStoragePool>;
using VolRef = std::shared_ptr<virStorageVol>;

DomainRef WrapDomain(virDomainPtr d) {
  return d ? DomainRef(d, [](virDomainPtr p) { virDomainFree(p); }) : nullptr;
}
PoolRef WrapPool(virStoragePoolPtr p) {
  return p ? PoolRef(p, [](virStoragePoolPtr x) { virStoragePoolFree(x); }) : nullptr;
}
VolRef WrapVol(virStorageVolPtr v) {
  return v ? VolRef(v, [](virStorageVolPtr x) { virStorageVolFree(x); }) : nullptr;
}
// libvirt strings are malloc'ed; nullopt for a failed call.
std::optional<std::string> TakeString(char* s) {
  if (!s) return std::nullopt;
  std::string out = s;
  free(s);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The <target><format type> of a volume's XML; "raw" when absent.
std::string VolumeFormat(const std::string& xml) {
  pugi::xml_document doc;
  doc.load_string(xml.c_str());
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

// The member name a leftover volume of `annotation` in `group` belongs to
// ("web-3" for "web-3-vda.qcow2"), or "" when the name does not have that form.
std::string LeftoverOwner(const std::string& volume, const std::string& group,
                          const VolumeAnnotation& annotation) {
  const std::string prefix = group + "-";
  if (!volume.starts_with(prefix)) return "";
  size_t i = prefix.size();
  size_t digits = i;
  while (digits < volume.size() && std::isdigit(static_cast<unsigned char>(volume[digits]))) {
    ++digits;
  }
  if (digits == i || volume[i] == '0') return "";  // PickDomainName never writes "web-01"
  std::string domain = volume.substr(0, digits);
  std::string rest = volume.substr(digits);
  const std::string middle = "-" + annotation.target + ".";
  if (!rest.starts_with(middle)) return "";
  std::string format = rest.substr(middle.size());
  if (format.empty() || format.find_first_of("/.") != std::string::npos) return "";
  std::string expected = annotation.format;
  if (expected.empty() && annotation.mode == VolumeAnnotation::Mode::kOverlay) expected = "qcow2";
  if (!expected.empty() && format != expected) return "";
  return annotation.VolumeName(domain, format) == volume ? domain : "";
}

// A domain's XML disk sources, keyed by the domain's name.
using SourcesByDomain = std::map<std::string, std::vector<DiskSource>>;

// The first domain (other than the one excluded) whose disks use the volume.
std::optional<std::string> VolumeUser(const SourcesByDomain& sources, const std::string& path,
                                      const std::string& pool, const std::string& name) {
  for (const auto& [domain, list] : sources) {
    if (UsesVolume(list, path, pool, name)) return domain;
  }
  return std::nullopt;
}

struct Outcome {
  bool ok = false;
  std::string error;
  std::string detail;  // logged on success, e.g. "already running"
  static Outcome Ok(std::string detail = "") { return {true, "", std::move(detail)}; }
  static Outcome Fail(std::string error) { return {false, std::move(error), ""}; }
};

}  // namespace

// One operation on one connection: every libvirt call goes through Call (or
// Rollback), which runs it under the deadline and turns failures into text.
class LibvirtActuator::Run {
 public:
  Run(LibvirtActuator& actuator, ConnectionRef conn)
      : a_(actuator), opts_(actuator.options_), conn_(std::move(conn)) {}

  template <typename F>
  auto Call(const std::string& what, F fn, Duration timeout = Duration::zero()) {
    CallPolicy policy{.timeout = timeout == Duration::zero() ? opts_.call_timeout : timeout,
                      .cancel_grace = opts_.cancel_grace,
                      .rollback = false};
    auto result = RunCall(what, std::move(fn), policy, *a_.cancel_, a_.stuck_);
    if (!result.value) call_abandoned_ = true;
    return result;
  }
  // A call of this run outlived its deadline or was cancelled: libvirt is not
  // answering, so best-effort work (stamps) stops instead of waiting again.
  bool call_abandoned() const { return call_abandoned_; }
  // For undoing a half-made create: runs even after a cancel.
  template <typename F>
  auto Rollback(const std::string& what, F fn) {
    CallPolicy policy{
        .timeout = opts_.call_timeout, .cancel_grace = opts_.cancel_grace, .rollback = true};
    return RunCall(what, std::move(fn), policy, *a_.cancel_, a_.stuck_);
  }

  // "what: libvirt message" for a call that returned a failure, or the call's
  // own failure (timed out, cancelled). Reports dead connections.
  std::string Why(const std::string& what, const CallStatus& status) {
    if (!status.failure.empty()) return status.failure;
    const LibvirtError& error = status.error;
    // A storage I/O error (VIR_ERR_SYSTEM_ERROR from the storage driver) is no
    // sign of a dead connection.
    if (error.connection_lost && error.domain != VIR_FROM_STORAGE && opts_.on_connection_error) {
      opts_.on_connection_error();
    }
    return fmt::format("{}: {}", what, error.message);
  }
  bool cancelled_now() const { return a_.cancel_->cancelled(); }

  ConnectionRef conn() const { return conn_; }

  // ---- small wrappers: nullptr/nullopt/-1 with `error` set on failure ----

  DomainRef Lookup(const std::string& name, std::string& error) {
    auto r = Call("lookup " + name, [c = conn_, name] {
      return WrapDomain(virDomainLookupByName(c.get(), name.c_str()));
    });
    if (r.value && *r.value) return *r.value;
    error = Why("lookup " + name, r);
    return nullptr;
  }
  // 1 active, 0 inactive, -1 failed.
  int IsActive(const DomainRef& dom, std::string& error, bool rollback = false) {
    auto fn = [dom] { return virDomainIsActive(dom.get()); };
    auto r = rollback ? Rollback("state", fn) : Call("state", fn);
    if (r.value && *r.value >= 0) return *r.value;
    error = Why("state", r);
    return -1;
  }
  // Lists every defined domain with its name, UUID and activity.
  struct DomainEntry {
    DomainRef dom;
    std::string name, uuid;
    bool active = false;
  };
  std::optional<std::vector<DomainEntry>> ListDomains(std::string& error) {
    auto r = Call("list domains", [c = conn_] {
      std::optional<std::vector<DomainEntry>> out;
      virDomainPtr* domains = nullptr;
      int n = virConnectListAllDomains(c.get(), &domains, 0);
      if (n < 0) return out;
      out.emplace();
      for (int i = 0; i < n; ++i) {
        DomainEntry e;
        e.dom = WrapDomain(domains[i]);
        if (const char* name = virDomainGetName(domains[i])) e.name = name;
        char uuid[VIR_UUID_STRING_BUFLEN] = {};
        if (virDomainGetUUIDString(domains[i], uuid) == 0) e.uuid = uuid;
        e.active = virDomainIsActive(domains[i]) == 1;
        out->push_back(std::move(e));
      }
      free(domains);
      return out;
    });
    if (r.value && *r.value) return std::move(*r.value);
    error = Why("list domains", r);
    return std::nullopt;
  }
  // The disk sources of every defined domain but `except_uuid`, from its current
  // XML and, for a running domain, also its persistent one.
  std::optional<SourcesByDomain> AllDiskSources(const std::string& except_uuid,
                                                std::string& error) {
    std::optional<std::vector<DomainEntry>> domains = ListDomains(error);
    if (!domains) return std::nullopt;
    SourcesByDomain out;
    for (const DomainEntry& e : *domains) {
      if (!except_uuid.empty() && EqualsIgnoreCase(e.uuid, except_uuid)) continue;
      std::vector<DiskSource>& list = out[e.name];
      std::vector<unsigned int> flag_sets = {0};
      if (e.active) flag_sets.push_back(VIR_DOMAIN_XML_INACTIVE);
      for (unsigned int flags : flag_sets) {
        auto r = Call("xml " + e.name, [dom = e.dom, flags] {
          return TakeString(virDomainGetXMLDesc(dom.get(), flags));
        });
        if (r.value && *r.value) {
          std::vector<DiskSource> found = ParseDiskSources(**r.value);
          list.insert(list.end(), found.begin(), found.end());
        } else if (r.value && r.error.code == VIR_ERR_NO_DOMAIN) {
          break;  // undefined meanwhile: uses nothing
        } else {
          error = Why("xml " + e.name, r);
          return std::nullopt;
        }
      }
    }
    return out;
  }

  // For each volume of `pool_name` that is an overlay: its backing file's path
  // -> the overlay's name. Inactive domains' XML does not show backing chains,
  // so a volume made on top of ours is found here.
  std::optional<std::map<std::string, std::string>> BackingFiles(const std::string& pool_name,
                                                                 std::string& error) {
    std::string what = "list volumes of " + pool_name;
    auto r = Call(what, [c = conn_, pool_name] {
      std::optional<std::map<std::string, std::string>> out;
      PoolRef pool = WrapPool(virStoragePoolLookupByName(c.get(), pool_name.c_str()));
      if (!pool) return out;
      virStorageVolPtr* list = nullptr;
      int n = virStoragePoolListAllVolumes(pool.get(), &list, 0);
      if (n < 0) return out;
      out.emplace();
      for (int i = 0; i < n; ++i) {
        VolRef vol = WrapVol(list[i]);
        std::optional<std::string> xml = TakeString(virStorageVolGetXMLDesc(vol.get(), 0));
        if (!xml) continue;
        pugi::xml_document doc;
        doc.load_string(xml->c_str());
        pugi::xml_node volume = doc.child("volume");
        std::string backing = volume.child("backingStore").child_value("path");
        if (!backing.empty()) (*out)[backing] = volume.child_value("name");
      }
      free(list);
      return out;
    });
    if (r.value && *r.value) return std::move(*r.value);
    error = Why(what, r);
    return std::nullopt;
  }

  // ---- operations ----

  Outcome Start(const Operation& op) {
    std::string error;
    DomainRef dom = Lookup(op.domain, error);
    if (!dom) return Outcome::Fail(error);
    int active = IsActive(dom, error);
    if (active < 0) return Outcome::Fail(error);
    if (active == 1) return Outcome::Ok("already running");
    auto r = Call("start", [dom] { return virDomainCreate(dom.get()); });
    if (!r.value || *r.value < 0) return Outcome::Fail(Why("start", r));
    return Outcome::Ok();
  }

  Outcome Stop(const Operation& op) {
    std::string error;
    DomainRef dom = Lookup(op.domain, error);
    if (!dom) return Outcome::Fail(error);
    bool forced = false;
    return StopDomain(dom, op.domain, op.shutdown_timeout, forced);
  }

  // Shuts `dom` down gracefully within `timeout`, then destroys it. `forced`
  // tells whether the destroy was needed.
  Outcome StopDomain(const DomainRef& dom, const std::string& name, Duration timeout,
                     bool& forced) {
    forced = false;
    std::string error;
    int active = IsActive(dom, error);
    if (active < 0) return Outcome::Fail(error);
    if (active == 0) return Outcome::Ok("already stopped");

    std::string shutdown_error;
    auto requested = Call("shutdown", [dom, seam = opts_.request_shutdown] {
      return seam ? seam(dom.get()) : virDomainShutdown(dom.get());
    });
    if (!requested.value) return Outcome::Fail(Why("shutdown", requested));
    if (*requested.value < 0) {
      // The driver or guest cannot take the request: nothing to wait for.
      shutdown_error = Why("shutdown", requested);
    } else {
      auto deadline = std::chrono::steady_clock::now() + timeout;
      const std::string cancelled =
          fmt::format("{} while waiting for {} to shut down", kCancelledText, name);
      while (true) {
        if (cancelled_now()) return Outcome::Fail(cancelled);
        auto state = Call("state", [dom] {
          int s = 0, reason = 0;
          return virDomainGetState(dom.get(), &s, &reason, 0) < 0 ? -1 : s;
        });
        if (!state.value || *state.value < 0) {
          return Outcome::Fail(cancelled_now() ? cancelled : Why("state", state));
        }
        if (*state.value == VIR_DOMAIN_SHUTOFF) return Outcome::Ok();
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        auto wait =
            std::min<std::chrono::steady_clock::duration>(opts_.poll_interval, deadline - now);
        if (!a_.cancel_->SleepFor(std::chrono::duration_cast<Duration>(wait) +
                                  std::chrono::milliseconds(1))) {
          return Outcome::Fail(cancelled);
        }
      }
    }
    auto destroyed = Call("destroy", [dom] { return virDomainDestroy(dom.get()); });
    if (!destroyed.value) return Outcome::Fail(Why("destroy", destroyed));
    if (*destroyed.value < 0) {
      std::string destroy_error = Why("destroy", destroyed);
      std::string ignored;
      if (IsActive(dom, ignored) == 0) return Outcome::Ok("shut off while destroying");
      return Outcome::Fail(shutdown_error.empty() ? destroy_error
                                                  : shutdown_error + "; " + destroy_error);
    }
    forced = true;
    return Outcome::Ok(shutdown_error.empty() ? fmt::format("destroyed after {} shutdown timeout",
                                                            FormatDuration(timeout))
                                              : "destroyed after " + shutdown_error);
  }

  // virDomainUndefineFlags with the richest cleanup flags the driver accepts.
  Outcome UndefineDomain(const DomainRef& dom, bool rollback = false) {
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
      auto fn = [dom, flags] { return virDomainUndefineFlags(dom.get(), flags); };
      auto r = rollback ? Rollback("undefine", fn) : Call("undefine", fn);
      if (r.value && *r.value == 0) return Outcome::Ok();
      error = Why("undefine", r);
      if (!r.value) break;
      int code = r.error.code;
      if (code != VIR_ERR_INVALID_ARG && code != VIR_ERR_NO_SUPPORT) break;
    }
    return Outcome::Fail(error);
  }

  Outcome Delete(const Operation& op) {
    const std::string& name = op.domain;
    std::string error;
    DomainRef dom = Lookup(name, error);
    if (!dom) return Outcome::Fail(error);
    auto refuse = [&](const std::string& why) {
      return Outcome::Fail(fmt::format("refusing to delete domain {}: {}", name, why));
    };

    auto metadata = Call("metadata", [dom] {
      return TakeString(
          virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0));
    });
    if (!metadata.value) return refuse(Why("metadata", metadata));
    if (!*metadata.value) {
      if (metadata.error.code != VIR_ERR_NO_DOMAIN_METADATA) {
        return refuse(Why("metadata", metadata));
      }
      return refuse("not created by virtscale");
    }
    const std::string& metadata_xml = **metadata.value;
    std::optional<VirtscaleMetadata> meta = ParseVirtscaleMetadata(metadata_xml);
    if (!meta) return refuse("not created by virtscale (unreadable metadata)");
    if (meta->group != op.group) {
      return refuse(
          fmt::format("created by virtscale for group '{}', not '{}'", meta->group, op.group));
    }
    if (meta->uuid.empty()) {
      return refuse(
          "created before ownership records carried a UUID; never deleted — see CHANGELOG");
    }
    auto uuid = Call("uuid", [dom] {
      char buf[VIR_UUID_STRING_BUFLEN] = {};
      return virDomainGetUUIDString(dom.get(), buf) < 0 ? std::optional<std::string>()
                                                        : std::optional<std::string>(buf);
    });
    if (!uuid.value || !*uuid.value) return refuse(Why("uuid", uuid));
    const std::string own_uuid = **uuid.value;
    if (!EqualsIgnoreCase(meta->uuid, own_uuid)) {
      return refuse(fmt::format("its ownership record names UUID {}, the domain is {} (a copy?)",
                                meta->uuid, own_uuid));
    }
    std::vector<CreatedVolume> volumes = ParseRecordedVolumes(metadata_xml);
    // Its own disks, read before it is undefined.
    std::vector<DiskSource> own_sources;
    if (!volumes.empty()) {
      auto xml = Call("xml", [dom] { return TakeString(virDomainGetXMLDesc(dom.get(), 0)); });
      if (!xml.value || !*xml.value) return Outcome::Fail(Why("xml", xml));
      own_sources = ParseDiskSources(**xml.value);
      auto inactive = Call("xml", [dom] {
        return TakeString(virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE));
      });
      if (inactive.value && *inactive.value) {
        std::vector<DiskSource> more = ParseDiskSources(**inactive.value);
        own_sources.insert(own_sources.end(), more.begin(), more.end());
      }
    }

    bool forced = false;
    Outcome stopped = StopDomain(dom, name, op.shutdown_timeout, forced);
    if (!stopped.ok) return stopped;

    // A transient domain disappears when it stops; only persistent ones need undefining.
    auto persistent = Call("persistent", [dom] { return virDomainIsPersistent(dom.get()); });
    if (!persistent.value) return Outcome::Fail(Why("persistent", persistent));
    if (*persistent.value == 1) {
      Outcome undefined = UndefineDomain(dom);
      if (!undefined.ok) return undefined;
    }
    if (volumes.empty()) {
      return Outcome::Ok(forced ? "0 volume(s) deleted, " + stopped.detail : "");
    }

    std::optional<SourcesByDomain> others = AllDiskSources(own_uuid, error);
    if (!others) {
      return Outcome::Fail(fmt::format(
          "domain undefined, but its volumes remain (cannot tell whether other domains use "
          "them): {}",
          error));
    }
    std::vector<std::string> failures, kept;
    std::map<std::string, std::map<std::string, std::string>> backing_by_pool;
    int deleted = 0;
    for (const CreatedVolume& volume : volumes) {
      std::string label = fmt::format("{}/{}", volume.pool, volume.name);
      if (!backing_by_pool.contains(volume.pool)) {
        std::optional<std::map<std::string, std::string>> backing =
            BackingFiles(volume.pool, error);
        if (!backing) {
          failures.push_back(error);
          continue;
        }
        backing_by_pool[volume.pool] = std::move(*backing);
      }
      auto vol = Call("volume " + label, [c = conn_, volume] {
        PoolRef pool = WrapPool(virStoragePoolLookupByName(c.get(), volume.pool.c_str()));
        return pool ? WrapVol(virStorageVolLookupByName(pool.get(), volume.name.c_str())) : nullptr;
      });
      if (!vol.value || !*vol.value) {
        if (vol.value && vol.error.code == VIR_ERR_NO_STORAGE_VOL) continue;  // already gone
        failures.push_back(Why("volume " + label, vol));
        continue;
      }
      VolRef v = *vol.value;
      auto path =
          Call("volume path " + label, [v] { return TakeString(virStorageVolGetPath(v.get())); });
      if (!path.value || !*path.value) {
        failures.push_back(Why("volume path " + label, path));
        continue;
      }
      if (!UsesVolume(own_sources, **path.value, volume.pool, volume.name)) {
        kept.push_back(label + " (not a disk of " + name + ")");
        continue;
      }
      if (auto user = VolumeUser(*others, **path.value, volume.pool, volume.name)) {
        kept.push_back(fmt::format("{} (also a disk of domain {})", label, *user));
        continue;
      }
      const std::map<std::string, std::string>& backing = backing_by_pool[volume.pool];
      if (auto it = backing.find(**path.value); it != backing.end()) {
        kept.push_back(fmt::format("{} (backing file of volume {})", label, it->second));
        continue;
      }
      auto removed =
          Call("delete volume " + label, [v] { return virStorageVolDelete(v.get(), 0); });
      if (!removed.value || *removed.value < 0) {
        failures.push_back(Why("delete volume " + label, removed));
        continue;
      }
      ++deleted;
    }
    for (const std::string& k : kept) {
      LogWarn("volume recorded for a deleted member kept", {{"domain", name}, {"volume", k}});
    }
    if (!failures.empty()) {
      return Outcome::Fail(
          fmt::format("domain undefined, but its volumes remain: {}", fmt::join(failures, "; ")));
    }
    std::string detail = fmt::format("{} volume(s) deleted", deleted);
    if (!kept.empty()) detail += fmt::format(", kept {}", fmt::join(kept, ", "));
    if (forced) detail += ", " + stopped.detail;
    return Outcome::Ok(detail);
  }

  Outcome Create(const Operation& op, std::string& domain) {
    if (op.group.empty()) return Outcome::Fail("create: no group");
    if (!op.tmpl) return Outcome::Fail("create: no template");
    std::string error;
    std::optional<std::vector<DomainEntry>> listed = ListDomains(error);
    if (!listed) return Outcome::Fail(error);
    std::set<std::string> used;
    for (const DomainEntry& e : *listed) used.insert(e.name);

    std::string last_error;
    for (int attempt = 0; attempt < opts_.max_name_attempts; ++attempt) {
      std::string name = a_.ReserveName(op.group, used);
      used.insert(name);
      bool clash = false;
      Outcome outcome;
      try {
        outcome = CreateNamed(*op.tmpl, op, name, clash);
      } catch (...) {
        a_.ReleaseName(name);
        throw;
      }
      a_.ReleaseName(name);
      domain = name;
      if (outcome.ok || !clash) return outcome;
      LogInfo("name taken, trying the next one", {{"group", op.group}, {"domain", name}});
      last_error = outcome.error;
    }
    return Outcome::Fail(fmt::format("no free name after {} attempts; last: {}",
                                     opts_.max_name_attempts, last_error));
  }

  // One attempt of Create with a fixed name; `clash` tells that the name (or a
  // volume name derived from it) was taken, so the next name may succeed.
  Outcome CreateNamed(const DomainTemplate& tmpl, const Operation& op, const std::string& name,
                      bool& clash) {
    clash = false;
    std::vector<std::pair<CreatedVolume, VolRef>> created;
    // Deletes the volumes this call made; appends any failure to `error`.
    auto drop_volumes = [&](std::string error) {
      for (const auto& [volume, vol] : created) {
        std::string what = fmt::format("delete volume {}/{}", volume.pool, volume.name);
        auto r = Rollback(what, [v = vol] { return virStorageVolDelete(v.get(), 0); });
        if (!r.value || *r.value < 0) error += "; rollback: " + Why(what, r);
      }
      return Outcome::Fail(std::move(error));
    };

    for (const VolumeAnnotation& annotation : tmpl.volumes()) {
      std::string what = fmt::format("volume {}", annotation.target);
      auto pool = Call(what + ": pool " + annotation.pool, [c = conn_, p = annotation.pool] {
        return WrapPool(virStoragePoolLookupByName(c.get(), p.c_str()));
      });
      if (!pool.value || !*pool.value) {
        return drop_volumes(Why(what + ": pool " + annotation.pool, pool));
      }
      PoolRef p = *pool.value;
      struct Base {
        VolRef vol;
        std::string path, format;
        unsigned long long capacity = 0;
      };
      std::string base_what = what + ": base " + annotation.base;
      auto base = Call(base_what, [p, name = annotation.base] {
        std::optional<Base> out;
        VolRef vol = WrapVol(virStorageVolLookupByName(p.get(), name.c_str()));
        if (!vol) return out;
        virStorageVolInfo info{};
        std::optional<std::string> path = TakeString(virStorageVolGetPath(vol.get()));
        if (!path || virStorageVolGetInfo(vol.get(), &info) < 0) return out;
        std::optional<std::string> xml = TakeString(virStorageVolGetXMLDesc(vol.get(), 0));
        out = Base{vol, *path, xml ? VolumeFormat(*xml) : "raw", info.capacity};
        return out;
      });
      if (!base.value || !*base.value) return drop_volumes(Why(base_what, base));
      const Base& b = **base.value;
      bool overlay = annotation.mode == VolumeAnnotation::Mode::kOverlay;
      std::string format = annotation.format.empty() ? b.format : annotation.format;
      std::string vol_name = annotation.VolumeName(name, format);
      std::string xml =
          NewVolumeXml(vol_name, b.capacity, format, overlay ? &b.path : nullptr, b.format);
      std::string create_what = fmt::format("create volume {}", vol_name);
      auto vol = Call(
          create_what,
          [p, xml, overlay, base_vol = b.vol] {
            return WrapVol(
                overlay ? virStorageVolCreateXML(p.get(), xml.c_str(), 0)
                        : virStorageVolCreateXMLFrom(p.get(), xml.c_str(), base_vol.get(), 0));
          },
          opts_.volume_timeout);
      if (!vol.value || !*vol.value) {
        std::string error = Why(create_what, vol);
        if (vol.value) {
          // A leftover volume of that name makes the name unusable: try the next one.
          auto existing = Call("volume " + vol_name, [p, vol_name] {
            return WrapVol(virStorageVolLookupByName(p.get(), vol_name.c_str())) != nullptr;
          });
          clash = existing.value && *existing.value;
        }
        return drop_volumes(std::move(error));
      }
      VolRef v = *vol.value;
      CreatedVolume record;
      record.target = annotation.target;
      record.pool = annotation.pool;
      record.name = vol_name;
      record.format = format;
      struct Facts {
        std::string path;
        bool block = false;
      };
      auto facts = Call("volume " + vol_name, [v] {
        std::optional<Facts> out;
        virStorageVolInfo info{};
        std::optional<std::string> path = TakeString(virStorageVolGetPath(v.get()));
        if (!path || virStorageVolGetInfo(v.get(), &info) < 0) return out;
        out = Facts{*path, info.type == VIR_STORAGE_VOL_BLOCK};
        return out;
      });
      created.emplace_back(record, v);
      if (!facts.value || !*facts.value) {
        return drop_volumes(Why("volume " + vol_name, facts));
      }
      created.back().first.path = (*facts.value)->path;
      created.back().first.block = (*facts.value)->block;
    }

    std::vector<CreatedVolume> records;
    for (const auto& [volume, vol] : created) records.push_back(volume);
    std::string xml;
    {
      std::lock_guard lock(a_.random_mu_);
      xml = tmpl.Render({.name = name,
                         .group = op.group,
                         .template_path = op.template_path,
                         .created_at_unix = opts_.now_unix()},
                        records, a_.random_);
    }
    if (opts_.before_define) opts_.before_define(conn_.get(), name);
    auto defined = Call("define", [c = conn_, xml] {
      return WrapDomain(virDomainDefineXML(c.get(), xml.c_str()));
    });
    if (!defined.value || !*defined.value) {
      std::string error = Why("define", defined);
      if (defined.value) {
        auto exists = Call("lookup " + name, [c = conn_, name] {
          return WrapDomain(virDomainLookupByName(c.get(), name.c_str())) != nullptr;
        });
        clash = exists.value && *exists.value;
      }
      return drop_volumes(std::move(error));
    }
    DomainRef dom = *defined.value;
    if (opts_.before_start) opts_.before_start(dom.get());
    auto started = Call("start", [dom] { return virDomainCreate(dom.get()); });
    if (!started.value || *started.value < 0) {
      std::string error = Why("start", started);
      std::string ignored;
      if (IsActive(dom, ignored, /*rollback=*/true) == 1) {
        auto destroyed = Rollback("destroy", [dom] { return virDomainDestroy(dom.get()); });
        if (!destroyed.value || *destroyed.value < 0) {
          error += "; rollback: " + Why("destroy", destroyed);
        }
      }
      if (Outcome undefined = UndefineDomain(dom, /*rollback=*/true); !undefined.ok) {
        error += "; rollback: " + undefined.error;
      }
      return drop_volumes(std::move(error));
    }
    return Outcome::Ok(created.empty() ? "" : fmt::format("{} volume(s) created", created.size()));
  }

  // Returns "" or what failed for this domain.
  std::string StampOne(const std::string& group, Direction direction, int64_t unix_seconds,
                       const std::string& name) {
    std::string error;
    DomainRef dom = Lookup(name, error);
    if (!dom) return error;
    auto current = Call("scale stamp", [dom] {
      return TakeString(virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT,
                                             kScaleStampNamespace, VIR_DOMAIN_AFFECT_CURRENT));
    });
    if (!current.value) return Why("scale stamp", current);
    if (!*current.value && current.error.code != VIR_ERR_NO_DOMAIN_METADATA) {
      return Why("scale stamp", current);
    }
    ScaleStamp stamp;
    stamp.group = group;
    if (*current.value) {
      std::optional<ScaleStamp> old = ParseScaleStamp(**current.value);
      if (old && old->group == group) stamp = *old;  // another group's stamp is replaced
    }
    int64_t& slot = direction == Direction::kUp ? stamp.last_up_unix : stamp.last_down_unix;
    slot = std::max(slot, unix_seconds);
    return WriteMetadata(dom, FormatScaleStamp(stamp, /*bare=*/true), kScaleStampPrefix,
                         kScaleStampNamespace, "write scale stamp");
  }

  // The first IPv4 address libvirt knows for the domain: from DHCP leases,
  // else the guest agent, else the host's ARP table; "" when none.
  std::string FirstIPv4(const std::string& name) {
    std::string error;
    DomainRef dom = Lookup(name, error);
    if (!dom) return "";
    for (unsigned source :
         {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
          VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP}) {
      auto found = Call("interface addresses", [dom, source] {
        virDomainInterfacePtr* ifaces = nullptr;
        const int n = virDomainInterfaceAddresses(dom.get(), &ifaces, source, 0);
        std::string address;
        for (int i = 0; i < n; ++i) {
          for (unsigned j = 0; address.empty() && j < ifaces[i]->naddrs; ++j) {
            const virDomainIPAddress& a = ifaces[i]->addrs[j];
            if (a.type == VIR_IP_ADDR_TYPE_IPV4 && a.addr != nullptr &&
                std::string_view(a.addr).substr(0, 4) != "127.")
              address = a.addr;
          }
          virDomainInterfaceFree(ifaces[i]);
        }
        free(ifaces);
        return address;
      });
      if (found.value && !found.value->empty()) return *found.value;
    }
    return "";
  }

  // Returns "" or what failed.
  std::string WriteLifecycle(const std::string& name, const LifecycleStamp& stamp) {
    std::string error;
    DomainRef dom = Lookup(name, error);
    if (!dom) return error;
    return WriteMetadata(dom, FormatLifecycleStamp(stamp, /*bare=*/true), kLifecyclePrefix,
                         kLifecycleNamespace, "write lifecycle stamp");
  }

  // Sets one of virtscale's metadata elements (`xml` bare, see domain_metadata.h)
  // in the persistent config, and in the live definition of a running (or
  // transient) domain. Returns "" or what failed.
  std::string WriteMetadata(const DomainRef& dom, std::string xml, const char* prefix,
                            const char* ns, const char* what) {
    auto flags = Call("state", [dom] {
      int active = virDomainIsActive(dom.get());
      int persistent = virDomainIsPersistent(dom.get());
      if (active < 0 || persistent < 0) return -1;
      unsigned int f = 0;
      if (persistent == 1) f |= VIR_DOMAIN_AFFECT_CONFIG;
      if (active == 1 || persistent == 0) f |= VIR_DOMAIN_AFFECT_LIVE;
      return static_cast<int>(f);
    });
    if (!flags.value || *flags.value < 0) return Why("state", flags);
    auto written = Call(
        what, [dom, xml = std::move(xml), prefix, ns, f = static_cast<unsigned>(*flags.value)] {
          return virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, xml.c_str(), prefix,
                                      ns, f);
        });
    if (!written.value || *written.value < 0) return Why(what, written);
    return "";
  }

  LeftoverCleanup Cleanup(const RuleSet& rules) {
    LeftoverCleanup result;
    struct Candidate {
      std::string pool, name, path, domain;
      VolRef vol;
    };
    std::vector<Candidate> candidates;
    std::set<std::string> listed_pools;
    std::vector<std::string> errors;
    for (const GroupRule& group : rules.groups) {
      if (group.dry_run || !group.template_doc) continue;
      for (const VolumeAnnotation& annotation : group.template_doc->volumes()) {
        if (!listed_pools.insert(annotation.pool).second) continue;
        struct Listed {
          std::string name, path;
          VolRef vol;
        };
        std::string what = "list volumes of " + annotation.pool;
        auto vols = Call(what, [c = conn_, pool_name = annotation.pool] {
          std::optional<std::vector<Listed>> out;
          PoolRef pool = WrapPool(virStoragePoolLookupByName(c.get(), pool_name.c_str()));
          if (!pool) return out;
          virStorageVolPtr* list = nullptr;
          int n = virStoragePoolListAllVolumes(pool.get(), &list, 0);
          if (n < 0) return out;
          out.emplace();
          for (int i = 0; i < n; ++i) {
            Listed l;
            l.vol = WrapVol(list[i]);
            if (const char* name = virStorageVolGetName(list[i])) l.name = name;
            l.path = TakeString(virStorageVolGetPath(list[i])).value_or("");
            out->push_back(std::move(l));
          }
          free(list);
          return out;
        });
        if (!vols.value || !*vols.value) {
          errors.push_back(Why(what, vols));
          continue;
        }
        for (Listed& l : **vols.value) {
          // Any group whose template puts volumes in this pool may own it.
          for (const GroupRule& g : rules.groups) {
            if (g.dry_run || !g.template_doc) continue;
            std::string owner;
            for (const VolumeAnnotation& a : g.template_doc->volumes()) {
              if (a.pool != annotation.pool) continue;
              owner = LeftoverOwner(l.name, g.name, a);
              if (!owner.empty()) break;
            }
            if (owner.empty()) continue;
            candidates.push_back({annotation.pool, l.name, l.path, owner, l.vol});
            break;
          }
        }
      }
    }
    if (!candidates.empty()) {
      std::string error;
      // Listed after the volumes: a domain defined meanwhile is seen.
      std::optional<SourcesByDomain> sources = AllDiskSources("", error);
      if (!sources) {
        errors.push_back(error);
        candidates.clear();
      }
      std::map<std::string, std::map<std::string, std::string>> backing_by_pool;
      for (const Candidate& c : candidates) {
        std::string label = c.pool + "/" + c.name;
        if (a_.NameBusy(c.domain)) continue;  // a create in this process is making it
        if (VolumeUser(*sources, c.path, c.pool, c.name)) continue;
        if (!backing_by_pool.contains(c.pool)) {
          auto backing = BackingFiles(c.pool, error);
          if (!backing) {
            errors.push_back(error);
            continue;
          }
          backing_by_pool[c.pool] = std::move(*backing);
        }
        if (backing_by_pool[c.pool].contains(c.path)) continue;  // another volume's base
        auto removed =
            Call("delete volume " + label, [v = c.vol] { return virStorageVolDelete(v.get(), 0); });
        if (!removed.value || *removed.value < 0) {
          errors.push_back(Why("delete volume " + label, removed));
          continue;
        }
        LogInfo("deleted a leftover volume of an unfinished create",
                {{"volume", label}, {"domain", c.domain}});
        result.deleted.push_back(label);
      }
    }
    result.error = fmt::format("{}", fmt::join(errors, "; "));
    return result;
  }

 private:
  LibvirtActuator& a_;
  const Options& opts_;
  ConnectionRef conn_;
  bool call_abandoned_ = false;
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
  if (options_.call_timeout <= Duration::zero()) options_.call_timeout = std::chrono::seconds(10);
  if (options_.volume_timeout < options_.call_timeout)
    options_.volume_timeout = options_.call_timeout;
}

std::string LibvirtActuator::PickDomainName(const std::string& group,
                                            const std::set<std::string>& used) {
  for (unsigned long n = 1;; ++n) {
    std::string name = fmt::format("{}-{}", group, n);
    if (!used.contains(name)) return name;
  }
}

std::string LibvirtActuator::ReserveName(const std::string& group,
                                         const std::set<std::string>& used) {
  std::lock_guard lock(names_mu_);
  std::set<std::string> taken = used;
  taken.insert(reserved_names_.begin(), reserved_names_.end());
  std::string name = PickDomainName(group, taken);
  reserved_names_.insert(name);
  if (cleanups_running_ > 0) names_seen_.insert(name);
  return name;
}

void LibvirtActuator::ReleaseName(const std::string& name) {
  std::lock_guard lock(names_mu_);
  reserved_names_.erase(name);
}

bool LibvirtActuator::NameBusy(const std::string& name) {
  std::lock_guard lock(names_mu_);
  return reserved_names_.contains(name) || names_seen_.contains(name);
}

void LibvirtActuator::Cancel() {
  if (!cancel_->cancelled()) LogInfo("actuator cancelled: operations give up and roll back");
  cancel_->Cancel();
}

OperationResult LibvirtActuator::Execute(const Operation& op) {
  auto started = std::chrono::steady_clock::now();
  OperationResult result;
  result.domain = op.domain;
  Outcome outcome;
  try {
    ConnectionRef conn = provider_ ? provider_() : nullptr;
    if (cancel_->cancelled()) {
      outcome = Outcome::Fail(kCancelledText);
    } else if (!conn) {
      outcome = Outcome::Fail("libvirt down");
    } else {
      Run run(*this, conn);
      switch (op.kind) {
        case Operation::Kind::kStart:
          outcome = run.Start(op);
          break;
        case Operation::Kind::kCreate:
          outcome = run.Create(op, result.domain);
          break;
        case Operation::Kind::kStop:
          outcome = run.Stop(op);
          break;
        case Operation::Kind::kDelete:
          outcome = run.Delete(op);
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

  // The engine logs the action once, with this detail.
  if (result.ok) result.detail = outcome.detail;
  return result;
}

std::string LibvirtActuator::RecordScaleTime(const std::string& group, Direction direction,
                                             int64_t unix_seconds,
                                             const std::vector<std::string>& domains) {
  if (domains.empty()) return "";
  std::lock_guard lock(stamp_mu_);
  if (cancel_->cancelled()) return kCancelledText;
  ConnectionRef conn = provider_ ? provider_() : nullptr;
  if (!conn) return "libvirt down";
  Run run(*this, conn);
  std::vector<std::string> errors;
  for (size_t i = 0; i < domains.size(); ++i) {
    std::string error = run.StampOne(group, direction, unix_seconds, domains[i]);
    if (!error.empty()) errors.push_back(domains[i] + ": " + error);
    // The group stays in flight until the stamps are written: one call that
    // outlived call_timeout is enough waiting for a best-effort record.
    if (run.call_abandoned() && i + 1 < domains.size()) {
      errors.push_back(fmt::format("{} more member(s) skipped", domains.size() - i - 1));
      break;
    }
  }
  std::string out = fmt::format("{}", fmt::join(errors, "; "));
  if (!out.empty()) {
    LogWarn("cannot record the scale time",
            {{"group", group},
             {"direction", direction == Direction::kUp ? "up" : "down"},
             {"error", out}});
  }
  return out;
}

std::string LibvirtActuator::MemberAddress(const std::string& domain) {
  ConnectionRef conn = provider_ ? provider_() : nullptr;
  if (!conn) return "";
  Run run(*this, conn);
  return run.FirstIPv4(domain);
}

std::string LibvirtActuator::RecordLifecycle(const std::string& domain,
                                             const LifecycleStamp& stamp) {
  std::lock_guard lock(stamp_mu_);
  ConnectionRef conn = provider_ ? provider_() : nullptr;
  if (!conn) return "libvirt down";
  Run run(*this, conn);
  return run.WriteLifecycle(domain, stamp);
}

LeftoverCleanup LibvirtActuator::CleanupLeftovers(const RuleSet& rules) {
  std::lock_guard lock(cleanup_mu_);
  ConnectionRef conn = provider_ ? provider_() : nullptr;
  if (!conn) return {{}, "libvirt down"};
  {
    std::lock_guard names(names_mu_);
    ++cleanups_running_;
    names_seen_.insert(reserved_names_.begin(), reserved_names_.end());
  }
  LeftoverCleanup result;
  try {
    Run run(*this, conn);
    result = run.Cleanup(rules);
  } catch (const std::exception& e) {
    result.error = fmt::format("internal error: {}", e.what());
  }
  {
    std::lock_guard names(names_mu_);
    if (--cleanups_running_ == 0) names_seen_.clear();
  }
  if (!result.error.empty()) LogWarn("leftover cleanup incomplete", {{"error", result.error}});
  return result;
}

}  // namespace virtscale::autoscale
