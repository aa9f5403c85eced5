#pragma once
// Shared inputs for the benchmark programs: a synthetic snapshot shaped like a
// busy KVM host, and a whole-file reader. Header-only so that bench/CMakeLists
// can keep building every *_bench.cc as its own program.
//
//   virtscale::Snapshot snap = virtscale::bench::SyntheticSnapshot(1000);
//   std::optional<std::string> body = virtscale::bench::ReadFile(path);
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "collectors/snapshot.h"

namespace virtscale::bench {

// `domains` running KVM domains with every field the bulk call fills on a real
// host: 2 vCPUs, one disk, one NIC, balloon stats, CPU/memory utilisation.
// Every field is set, so the exposition emits every family it knows.
inline Snapshot SyntheticSnapshot(int domains) {
  Snapshot snap;
  snap.taken_at = std::chrono::system_clock::now();
  snap.taken_at_steady = std::chrono::steady_clock::now();
  snap.duration_seconds = 0.25;
  snap.sequence = 2;
  snap.libvirt_up = true;
  snap.libvirt_uri = "qemu:///system";
  snap.host.cpus = 64;
  snap.host.memory_total_bytes = 512ull << 30;
  snap.host.memory_free_bytes = 100ull << 30;
  snap.host.cpu_time_ns = {{"user", 1'000'000'000'000},
                           {"system", 200'000'000'000},
                           {"idle", 9'000'000'000'000},
                           {"iowait", 1'000'000'000}};
  snap.collectors = {{"domains", 0.2, true}, {"host", 0.001, true}};
  snap.domains.reserve(domains);
  for (int i = 0; i < domains; ++i) {
    DomainStats d;
    char name[32];
    std::snprintf(name, sizeof name, "vm-%04d", i);
    d.name = name;
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", i);
    d.uuid = uuid;
    d.os_type = "hvm";
    d.os_arch = "x86_64";
    d.os_machine = "pc-q35-7.2";
    d.state = DomainState::kRunning;
    d.state_reason = 1;
    d.active = true;
    d.virtual_cpus = 2;
    d.max_memory_bytes = 2ull << 30;
    d.memory_bytes = 2ull << 30;
    const uint64_t k = static_cast<uint64_t>(i) + 1;
    d.cpu_time_ns = 123'456'789'000 * k;
    d.cpu_user_ns = 100'000'000'000 * k;
    d.cpu_system_ns = 20'000'000'000 * k;
    d.memory = {.current = 2ull << 30,
                .maximum = 2ull << 30,
                .swap_in = 0,
                .swap_out = 0,
                .major_fault = 120 * k,
                .minor_fault = 99'000 * k,
                .unused = 1ull << 30,
                .available = 2ull << 30,
                .usable = 1ull << 30,
                .disk_caches = 300ull << 20,
                .rss = 1ull << 30};
    for (unsigned v = 0; v < 2; ++v) {
      d.vcpus.push_back({.id = v,
                         .state = 1,
                         .time_ns = 60'000'000'000 * k + v,
                         .wait_ns = 1'000'000 * k,
                         .delay_ns = 2'000'000 * k});
    }
    BlockStats disk;
    disk.name = "vda";
    disk.path = "/var/lib/libvirt/images/" + d.name + ".qcow2";
    disk.rd_reqs = 1000 * k;
    disk.rd_bytes = 4'096'000 * k;
    disk.rd_times_ns = 9'000'000 * k;
    disk.wr_reqs = 500 * k;
    disk.wr_bytes = 2'048'000 * k;
    disk.wr_times_ns = 7'000'000 * k;
    disk.fl_reqs = 50 * k;
    disk.fl_times_ns = 1'000'000 * k;
    disk.errors = 0;
    disk.allocation = 1ull << 30;
    disk.capacity = 20ull << 30;
    disk.physical = 1ull << 30;
    d.blocks.push_back(disk);
    InterfaceStats nic;
    nic.name = "vnet" + std::to_string(i);
    nic.rx_bytes = 1'000'000 * k;
    nic.rx_pkts = 1000 * k;
    nic.rx_errs = 0;
    nic.rx_drop = 0;
    nic.tx_bytes = 2'000'000 * k;
    nic.tx_pkts = 2000 * k;
    nic.tx_errs = 0;
    nic.tx_drop = 0;
    d.interfaces.push_back(nic);
    d.cpu_utilization = 0.42;
    d.memory_utilization = 0.5;
    snap.domains.push_back(std::move(d));
  }
  return snap;
}

inline std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace virtscale::bench
