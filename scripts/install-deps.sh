#!/usr/bin/env bash
# Installs every build, test and runtime dependency from Debian packages.
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl python3
  clang clang-format libclang-rt-14-dev
  libvirt-dev libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu
  qemu-system-x86 qemu-utils
  prometheus-cpp-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libpugixml-dev libsystemd-dev libcrypt-dev libboost1.81-dev
  libhowardhinnant-date-dev tzdata
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus prometheus-libvirt-exporter
  openssl wrk valgrind dpkg-dev systemd
  etcd-server etcd-client iproute2 util-linux
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# Debian's prometheus packages start their services on install; we start our own.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Stop anything the packages' postinst scripts started; tests run their own instances.
for svc in prometheus prometheus-libvirt-exporter libvirtd virtlogd etcd; do
  pkill -x "$svc" 2>/dev/null || true
done
pkill -f prometheus-libvirt-exporter 2>/dev/null || true
echo "install-deps: done"
