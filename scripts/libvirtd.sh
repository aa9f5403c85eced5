#!/usr/bin/env bash
# Starts, stops or reports a system libvirtd (with virtlogd) for end-to-end tests,
# on machines where the Debian packages are installed but no init system runs them.
#
#   scripts/libvirtd.sh start    # idempotent; waits until `virsh -c qemu:///system version` answers
#   scripts/libvirtd.sh stop     # idempotent; waits until both daemons are gone
#   scripts/libvirtd.sh status   # exit 0 when libvirtd answers, 3 otherwise
#
# QEMU runs as root with no security driver (no AppArmor/SELinux labelling here),
# and guests need no network: tests use no NIC or user-mode networking.
# Environment: LIBVIRTD_WAIT_SECONDS (default 30) bounds every wait.
set -euo pipefail

readonly kUri="qemu:///system"
readonly kQemuConf=/etc/libvirt/qemu.conf
readonly kMarker="# written by virtscale scripts/libvirtd.sh"
readonly kLibvirtdPid=/run/libvirtd.pid
readonly kVirtlogdPid=/run/virtlogd.pid
wait_seconds="${LIBVIRTD_WAIT_SECONDS:-30}"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "libvirtd.sh: $*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Prints the pid of a running daemon: from its pid file, else by exact process name.
daemon_pid() {
  local name="$1" pidfile="$2" pid=""
  if [ -r "$pidfile" ]; then
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null || true)" = "$name" ]; then
      echo "$pid"
      return 0
    fi
  fi
  pid="$(pgrep -x "$name" | head -n1 || true)"
  [ -n "$pid" ] && echo "$pid"
  return 0
}

answers() { timeout 10 virsh -c "$kUri" version >/dev/null 2>&1; }

ensure_packages() {
  if ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null ||
    ! command -v virsh >/dev/null || ! command -v qemu-system-x86_64 >/dev/null; then
    log "libvirt/QEMU missing; installing Debian packages"
    "$script_dir/install-deps.sh"
  fi
}

ensure_accounts() {
  getent group kvm >/dev/null || $SUDO groupadd --system kvm
  getent group libvirt-qemu >/dev/null || $SUDO groupadd --system libvirt-qemu
  if ! getent passwd libvirt-qemu >/dev/null; then
    $SUDO useradd --system --no-create-home --home-dir /var/lib/libvirt \
      --shell /usr/sbin/nologin -g libvirt-qemu -G kvm libvirt-qemu
  fi
}

ensure_qemu_conf() {
  $SUDO mkdir -p /etc/libvirt
  if [ -f "$kQemuConf" ] && ! grep -qF "$kMarker" "$kQemuConf"; then
    # Keep the administrator's file once; later runs find our marker.
    [ -e "$kQemuConf.virtscale-orig" ] || $SUDO cp -p "$kQemuConf" "$kQemuConf.virtscale-orig"
  fi
  if ! grep -qF "$kMarker" "$kQemuConf" 2>/dev/null; then
    $SUDO tee "$kQemuConf" >/dev/null <<EOF
$kMarker
user = "root"
group = "root"
dynamic_ownership = 1
security_driver = "none"
EOF
  fi
}

start() {
  if answers; then
    log "already running (pid $(daemon_pid libvirtd "$kLibvirtdPid"))"
    return 0
  fi
  ensure_packages
  ensure_accounts
  ensure_qemu_conf
  $SUDO mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/lib/libvirt/images \
    /run/libvirt /var/cache/libvirt
  if [ -z "$(daemon_pid virtlogd "$kVirtlogdPid")" ]; then
    $SUDO virtlogd -d
  fi
  if [ -z "$(daemon_pid libvirtd "$kLibvirtdPid")" ]; then
    $SUDO libvirtd -d
  fi
  local deadline=$((SECONDS + wait_seconds))
  until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "libvirtd did not answer on $kUri within ${wait_seconds}s"
      return 1
    fi
    if [ -z "$(daemon_pid libvirtd "$kLibvirtdPid")" ]; then
      log "libvirtd exited during start-up; see /var/log/libvirt or run 'libvirtd -v' by hand"
      return 1
    fi
    sleep 0.2
  done
  log "running (libvirtd pid $(daemon_pid libvirtd "$kLibvirtdPid"), virtlogd pid $(daemon_pid virtlogd "$kVirtlogdPid"))"
}

# Sends SIGTERM to one daemon, SIGKILL after the deadline, and waits until it is gone.
stop_daemon() {
  local name="$1" pidfile="$2" pid
  pid="$(daemon_pid "$name" "$pidfile")"
  [ -n "$pid" ] || return 0
  $SUDO kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + wait_seconds))
  while [ -d /proc/"$pid" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      $SUDO kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  $SUDO rm -f "$pidfile"
}

stop() {
  stop_daemon libvirtd "$kLibvirtdPid"
  stop_daemon virtlogd "$kVirtlogdPid"
  log "stopped"
}

status() {
  if answers; then
    echo "libvirtd running (pid $(daemon_pid libvirtd "$kLibvirtdPid")), answering on $kUri"
    return 0
  fi
  echo "libvirtd not answering on $kUri"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop && start ;;
  *)
    echo "usage: $0 start|stop|status|restart" >&2
    exit 2
    ;;
esac
