#!/usr/bin/env bash
# A lab of N libvirt hosts on this one machine, for fleet (multi-host) tests.
#
#   scripts/fleet-lab.sh up N          # idempotent; prints one "NAME URI" line per host
#   scripts/fleet-lab.sh down          # removes everything the lab made (guests included)
#   scripts/fleet-lab.sh status        # prints "NAME URI STATE" per host (running|stopped|unreachable)
#   scripts/fleet-lab.sh host-stop NAME   # kill -9 that host's libvirtd only (guests keep running)
#   scripts/fleet-lab.sh host-start NAME  # starts it again; waits until it answers over TCP
#
# Host hvI (I = 1..N, N <= 50) is a libvirtd + virtlogd pair in network namespace
# vslab-hvI, a private mount namespace and (on cgroup v1 / hybrid machines) a
# private cgroup namespace. It listens on qemu+tcp://10.77.0.(I+1)/system (TCP,
# auth none) on a veth whose peer is on bridge vslab0 (10.77.0.1/24 in the root
# namespace). /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
# /var/cache/libvirt are bind mounts of $FLEET_LAB_DIR/hvI/{etc,run,lib,log,cache},
# so hosts share no state with each other nor with the system libvirtd of
# scripts/libvirtd.sh (qemu:///system), which may run at the same time. Each host
# has a dir storage pool "default" at $FLEET_LAB_DIR/hvI/images (the same path in
# every namespace) holding idle.img (a halting boot sector, scripts/build-test-guest.sh).
#
# Group templates, written once per lab (domain type kvm when a KVM guest starts, else qemu):
#   $FLEET_LAB_DIR/template.xml       diskless, 32 MiB, no volume annotation (SeaBIOS
#                                     finds nothing to boot and retries: ~1% of a CPU here)
#   $FLEET_LAB_DIR/template-idle.xml  32 MiB, a qcow2 overlay of idle.img in pool "default"
#                                     per member (its vCPU halts: ~0% CPU)
#
# stdout carries only the "NAME URI" lines of `up` and the lines of `status`; logs go
# to stderr. Daemon logs: $FLEET_LAB_DIR/hvI/{libvirtd,virtlogd}.out and hvI/log/.
# Environment: FLEET_LAB_DIR (default /var/lib/virtscale-fleet-lab),
# FLEET_LAB_WAIT_SECONDS (default 30) bounds every wait. Needs root.
set -euo pipefail

readonly kBridge=vslab0
readonly kNetPrefix=10.77.0
readonly kNsPrefix=vslab-
readonly kMaxHosts=50
readonly kPort=16509
lab_dir="${FLEET_LAB_DIR:-/var/lib/virtscale-fleet-lab}"
wait_seconds="${FLEET_LAB_WAIT_SECONDS:-30}"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "fleet-lab.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- names -------------------------------------------------------------------------

host_index() { echo "${1#hv}"; }
host_ip() { echo "$kNetPrefix.$(($(host_index "$1") + 1))"; }
host_uri() { echo "qemu+tcp://$(host_ip "$1")/system"; }
host_ns() { echo "$kNsPrefix$1"; }  # also the name of the root-namespace end of the veth
host_dir() { echo "$lab_dir/$1"; }

valid_name() { [[ "$1" =~ ^hv([1-9][0-9]?)$ ]] && [ "${BASH_REMATCH[1]}" -le "$kMaxHosts" ]; }

# Hosts the lab has now (state dirs or namespaces), sorted by index.
lab_hosts() {
  {
    local d
    for d in "$lab_dir"/hv*; do
      [ -d "$d" ] && basename "$d"
    done
    ip netns list 2>/dev/null | awk -v p="$kNsPrefix" 'index($1, p) == 1 { print substr($1, length(p) + 1) }'
  } | while read -r n; do valid_name "$n" && echo "$n"; done | sort -u -t v -k 2 -n
}

# --- processes -----------------------------------------------------------------------

# Prints the pid of host NAME's daemon DAEMON (libvirtd|virtlogd) when it runs: the pid
# in its pid file, with that command name, inside the host's network namespace.
daemon_pid() {
  local name="$1" daemon="$2" pidfile pid
  pidfile="$(host_dir "$name")/$daemon.pid"
  [ -r "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ "$(cat /proc/"$pid"/comm 2>/dev/null || true)" = "$daemon" ] || return 0
  [ "$(ip netns identify "$pid" 2>/dev/null || true)" = "$(host_ns "$name")" ] || return 0
  echo "$pid"
}

answers() { timeout 10 virsh -c "$(host_uri "$1")" version >/dev/null 2>&1; }

virsh_host() {
  local name="$1"
  shift
  timeout 30 virsh -q -c "$(host_uri "$name")" "$@"
}

# Waits until no pid of the list exists; SIGKILLs what is left at the deadline.
wait_gone() {
  local deadline=$((SECONDS + wait_seconds)) pid left
  while :; do
    left=""
    for pid in "$@"; do
      # A zombie (state Z: killed, not yet reaped by its parent) counts as gone.
      if [ -d /proc/"$pid" ] && [ "$(awk '{ print $3 }' /proc/"$pid"/stat 2>/dev/null || echo Z)" != Z ]; then
        left="$left $pid"
      fi
    done
    [ -z "$left" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "still running after ${wait_seconds}s:$left; sending SIGKILL"
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      sleep 0.2
      return 0
    fi
    sleep 0.1
  done
}

# --- prerequisites -------------------------------------------------------------------

ensure_tools() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, bind mounts, libvirtd)"
  if ! command -v libvirtd >/dev/null || ! command -v virtlogd >/dev/null ||
    ! command -v virsh >/dev/null || ! command -v qemu-system-x86_64 >/dev/null ||
    ! command -v qemu-img >/dev/null || ! command -v ip >/dev/null ||
    ! command -v nsenter >/dev/null || ! command -v unshare >/dev/null; then
    log "libvirt/QEMU/iproute2/util-linux missing; installing Debian packages"
    "$script_dir/install-deps.sh" >&2
  fi
  # Mount points of the private bind mounts; harmless in the root namespace.
  mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
}

# --- network ---------------------------------------------------------------------------

ensure_bridge() {
  if ! ip link show "$kBridge" >/dev/null 2>&1; then
    ip link add "$kBridge" type bridge
  fi
  # (No `| grep -q` here: under pipefail, grep quitting early fails the pipeline.)
  [[ "$(ip addr show dev "$kBridge")" == *"inet $kNetPrefix.1/24 "* ]] ||
    ip addr add "$kNetPrefix.1/24" dev "$kBridge"
  ip link set "$kBridge" up
}

ensure_netns() {
  local name="$1" ns ip
  ns="$(host_ns "$name")"
  ip="$(host_ip "$name")"
  [ -e /run/netns/"$ns" ] || ip netns add "$ns"
  ip -n "$ns" link set lo up
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip link del "$ns" 2>/dev/null || true  # a root end left without its peer
    ip link add "$ns" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$ns" master "$kBridge"
  ip link set "$ns" up
  [[ "$(ip -n "$ns" addr show dev eth0)" == *"inet $ip/24 "* ]] || ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# --- state dir, config -------------------------------------------------------------------

ensure_state() {
  local name="$1" d
  d="$(host_dir "$name")"
  mkdir -p "$d"/{etc,run,lib,log,cache,images}
  chmod 0755 "$lab_dir" "$d" "$d/images"
  # A fresh /etc/libvirt: the system one's qemu/ and storage/ hold the system host's
  # domains and pools, which must not appear on lab hosts. Only plain client configs
  # are copied.
  local f
  for f in libvirt.conf libvirt-admin.conf; do
    [ -f /etc/libvirt/$f ] && [ ! -e "$d/etc/$f" ] && cp -p /etc/libvirt/$f "$d/etc/$f"
  done
  cat >"$d/etc/libvirtd.conf" <<EOF
# written by virtscale scripts/fleet-lab.sh for lab host $name
listen_tls = 0
listen_tcp = 1
tcp_port = "$kPort"
listen_addr = "$(host_ip "$name")"
auth_tcp = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  cat >"$d/etc/qemu.conf" <<EOF
# written by virtscale scripts/fleet-lab.sh for lab host $name
user = "root"
group = "root"
dynamic_ownership = 1
security_driver = "none"
EOF
  cat >"$d/etc/virtlogd.conf" <<EOF
# written by virtscale scripts/fleet-lab.sh for lab host $name
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
  seed_caps_cache "$name"
  ensure_cgroups "$name"
  write_enter "$name"
}

# libvirtd probes every QEMU binary at its first start (several seconds each, and
# longer with all hosts probing at once on 2 cores). The probe results are the same
# for every host on this machine: a new host starts from a copy of another lab
# host's cache, else of the system libvirtd's. libvirt checks each entry (binary
# ctimes, libvirt version, kernel, microcode) and probes again when it is stale.
caps_seed() {
  local d
  for d in "$lab_dir"/hv*/cache/qemu/capabilities /var/cache/libvirt/qemu/capabilities; do
    if compgen -G "$d/*.xml" >/dev/null; then
      echo "$d"
      return 0
    fi
  done
}

seed_caps_cache() {
  local name="$1" caps seed
  caps="$(host_dir "$name")/cache/qemu/capabilities"
  compgen -G "$caps/*.xml" >/dev/null && return 0
  seed="$(caps_seed)"
  [ -n "$seed" ] || return 0
  mkdir -p "$caps"
  cp -p "$seed"/*.xml "$caps"/
}

# On cgroup v1 / hybrid machines each host gets its own cgroup in every hierarchy (a
# child of this script's own one) and a cgroup namespace rooted there, so libvirt's
# "/machine/qemu-ID-NAME.libvirt-qemu" groups of two hosts never coincide (hosts
# number their domains from 1 each) and a host's cpu.time/quota is its guests' only.
# $d/cgroups lists "MOUNTPOINT FSTYPE OPTIONS DIR" per hierarchy; kept across
# host-stop/host-start (a restarted libvirtd must find its guests' groups again).
ensure_cgroups() {
  local name="$1" d mp fstype opts dir ok=1
  d="$(host_dir "$name")"
  if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null || true)" != tmpfs ]; then
    # Pure cgroup v2 (untested here): no per-host cgroup namespace, so two hosts'
    # guests of one name and id share libvirt's /machine group.
    [ -e "$d/cgroups" ] || log "$name: /sys/fs/cgroup is not cgroup v1/hybrid: no per-host cgroups"
    : >"$d/cgroups"
    return 0
  fi
  if [ -s "$d/cgroups" ]; then
    while read -r mp fstype opts dir; do
      mkdir -p "$dir" 2>/dev/null || ok=0
    done <"$d/cgroups"
    [ "$ok" -eq 1 ] && { inherit_cpuset "$d"; return 0; }
  fi
  local tmp="$d/cgroups.tmp" line sep rest mp2 ctl path
  : >"$tmp"
  # mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
  while read -r line; do
    sep="${line#* - }"
    read -r fstype _ opts <<<"$sep"
    [ "$fstype" = cgroup ] || [ "$fstype" = cgroup2 ] || continue
    rest="${line%% - *}"
    mp2="$(awk '{ print $5 }' <<<"$rest")"
    case "$mp2" in /sys/fs/cgroup/*) ;; *) continue ;; esac
    path=""
    # /proc/self/cgroup: ID:CONTROLLERS:PATH; a v1 hierarchy is the line whose every
    # controller is one of the mount's options, cgroup2 the line with none.
    while IFS=: read -r _ ctl p; do
      if [ "$fstype" = cgroup2 ]; then
        [ -z "$ctl" ] && path="$p"
      elif [ -n "$ctl" ]; then
        local c all=1
        for c in ${ctl//,/ }; do
          [[ ",$opts," == *",$c,"* ]] || all=0
        done
        [ "$all" -eq 1 ] && path="$p"
      fi
    done </proc/self/cgroup
    [ -n "$path" ] || continue
    dir="$mp2${path%/}/vslab-$name"
    mkdir -p "$dir"
    echo "$mp2 $fstype $opts $dir" >>"$tmp"
  done </proc/self/mountinfo
  mv "$tmp" "$d/cgroups"
  inherit_cpuset "$d"
}

# A v1 cpuset group takes no task until cpuset.cpus and cpuset.mems are set.
inherit_cpuset() {
  local d="$1" mp fstype opts dir f
  while read -r mp fstype opts dir; do
    [ -f "$dir/cpuset.cpus" ] || continue
    for f in cpuset.cpus cpuset.mems; do
      [ -n "$(cat "$dir/$f")" ] || cat "$(dirname "$dir")/$f" >"$dir/$f"
    done
  done <"$d/cgroups"
}

# hvI/enter.sh runs inside the host's fresh mount (and cgroup) namespace: it remounts
# the cgroup hierarchies (so they show the namespace's root), makes the private bind
# mounts and execs its arguments.
write_enter() {
  local name="$1" d mp fstype opts dir
  d="$(host_dir "$name")"
  {
    echo "# written by virtscale scripts/fleet-lab.sh: the mounts of lab host $name"
    echo "set -e"
    # The network namespace's own sysfs (libvirt's nodedev driver lists /sys/class/net).
    echo "mount -t sysfs -o nosuid,nodev,noexec vslab-sysfs /sys"
    echo "hostname '$name'"
    if [ -s "$d/cgroups" ]; then
      echo "mount -t tmpfs -o mode=755 vslab-cgroup /sys/fs/cgroup"
      while read -r mp fstype opts dir; do
        echo "mkdir -p '$mp' && mount -t $fstype -o '$opts' cgroup '$mp'"
      done <"$d/cgroups"
    elif [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null || true)" = cgroup2fs ]; then
      echo "mount -t cgroup2 cgroup2 /sys/fs/cgroup"
    fi
    echo "mount --bind '$d/etc' /etc/libvirt"
    echo "mount --bind '$d/run' /run/libvirt"
    echo "mount --bind '$d/lib' /var/lib/libvirt"
    echo "mount --bind '$d/log' /var/log/libvirt"
    echo "mount --bind '$d/cache' /var/cache/libvirt"
    echo 'exec "$@"'
  } >"$d/enter.sh"
}

# --- daemons -------------------------------------------------------------------------------

# Starts DAEMON ARGS... of host NAME in its namespaces, detached (stdin/out/err not the
# caller's), without waiting.
launch() {
  local name="$1" daemon="$2" d
  shift 2
  d="$(host_dir "$name")"
  rm -f "$d/$daemon.pid"
  local cgroupns=--cgroup
  [ -s "$d/cgroups" ] || cgroupns=""
  (
    while read -r _ _ _ dir; do
      echo "$BASHPID" >"$dir/cgroup.procs"
    done <"$d/cgroups"
    exec setsid nsenter --net=/run/netns/"$(host_ns "$name")" -- \
      unshare --mount $cgroupns --uts --propagation private -- sh "$d/enter.sh" "$daemon" "$@"
  ) </dev/null >>"$d/$daemon.out" 2>&1 9>&- &
}

start_virtlogd() {
  local name="$1" d
  d="$(host_dir "$name")"
  [ -n "$(daemon_pid "$name" virtlogd)" ] && return 0
  rm -f "$d/run/virtlogd-sock" "$d/run/virtlogd-admin-sock"
  launch "$name" virtlogd -p "$d/virtlogd.pid"
}

start_libvirtd() {
  local name="$1" d
  d="$(host_dir "$name")"
  [ -n "$(daemon_pid "$name" libvirtd)" ] && return 0
  launch "$name" libvirtd --listen -p "$d/libvirtd.pid"
}

# Waits until every named host's virtlogd socket exists, then starts their libvirtds.
start_daemons() {
  local name deadline=$((SECONDS + wait_seconds))
  for name in "$@"; do start_virtlogd "$name"; done
  for name in "$@"; do
    until [ -S "$(host_dir "$name")/run/virtlogd-sock" ]; do
      [ "$SECONDS" -lt "$deadline" ] ||
        die "$name: virtlogd did not start within ${wait_seconds}s; see $(host_dir "$name")/virtlogd.out"
      sleep 0.05
    done
  done
  for name in "$@"; do start_libvirtd "$name"; done
}

wait_answering() {
  local name deadline=$((SECONDS + wait_seconds))
  for name in "$@"; do
    until answers "$name"; do
      [ "$SECONDS" -lt "$deadline" ] ||
        die "$name: libvirtd did not answer on $(host_uri "$name") within ${wait_seconds}s; see $(host_dir "$name")/libvirtd.out and $(host_dir "$name")/log/libvirtd.log"
      sleep 0.1
    done
  done
}

# --- pool, templates ---------------------------------------------------------------------------

ensure_pool() {
  local name="$1" d
  d="$(host_dir "$name")"
  if ! virsh_host "$name" pool-info default >/dev/null 2>&1; then
    virsh_host "$name" pool-define-as default dir --target "$d/images" >/dev/null
    virsh_host "$name" pool-build default >/dev/null
  fi
  if [[ "$(virsh_host "$name" pool-info default 2>/dev/null || true)" != *"State:"*running* ]]; then
    virsh_host "$name" pool-start default >/dev/null
  fi
  virsh_host "$name" pool-autostart default >/dev/null
  if [ ! -f "$d/images/idle.img" ]; then
    cp "$lab_dir/idle.img" "$d/images/idle.img"
    virsh_host "$name" pool-refresh default >/dev/null
  fi
}

template_xml() {
  local type="$1" name="$2" disk="$3"
  cat <<EOF
<!--
  virtscale group template for the fleet lab (scripts/fleet-lab.sh). virtscale sets
  <name> (group-N), a fresh <uuid> and its ownership metadata for every member.
EOF
  if [ -n "$disk" ]; then
    cat <<EOF
  Each member gets a qcow2 overlay "MEMBER-hda.qcow2" of idle.img (a boot sector
  that halts) in the host's pool "default"; idle.img is in every lab host's pool.
-->
<domain type='$type'>
  <name>$name</name>
  <metadata>
    <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0"
                target="hda" pool="default" base="idle.img" mode="overlay"/>
  </metadata>
EOF
  else
    cat <<EOF
  Diskless: SeaBIOS finds nothing to boot and keeps retrying (a little CPU);
  no volume, so it works on every lab host as it is.
-->
<domain type='$type'>
  <name>$name</name>
EOF
  fi
  cat <<EOF
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
EOF
  if [ -n "$disk" ]; then
    cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <!-- replaced by the member's overlay (see the annotation above) -->
      <source file='$disk'/>
      <target dev='hda' bus='ide'/>
    </disk>
EOF
  fi
  cat <<EOF
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# The base image and both templates, once per lab. The domain type is probed by
# starting the diskless template as a transient guest on the first host with KVM.
ensure_templates() {
  local first="$1"
  if [ ! -f "$lab_dir/idle.img" ]; then
    local tmp
    tmp="$(mktemp -d "$lab_dir/.guest.XXXXXX")"
    "$script_dir/build-test-guest.sh" "$tmp" >/dev/null
    mv "$tmp/idle.img" "$lab_dir/idle.img"
    rm -rf "$tmp"
  fi
  if [ -f "$lab_dir/template.xml" ] && [ -f "$lab_dir/template-idle.xml" ]; then
    return 0
  fi
  local type=qemu probe="$lab_dir/.probe.xml" out
  if [ -e /dev/kvm ]; then
    template_xml kvm vslab-probe "" >"$probe"
    if out="$(virsh_host "$first" create "$probe" 2>&1)"; then
      type=kvm
      virsh_host "$first" destroy vslab-probe >/dev/null 2>&1 || true
    else
      log "a KVM guest did not start on $first ($out); templates use TCG (type qemu)"
    fi
    rm -f "$probe"
  fi
  template_xml "$type" lab-template "" >"$lab_dir/template.xml"
  template_xml "$type" lab-idle-template "$lab_dir/idle.img" >"$lab_dir/template-idle.xml"
  log "templates (domain type $type): $lab_dir/template.xml (diskless), $lab_dir/template-idle.xml (overlay of idle.img in pool default)"
}

# --- teardown -------------------------------------------------------------------------------------

# Removes the named hosts: their guests (virsh destroy while libvirtd answers, then
# SIGKILL of every process left in the host's network namespace: QEMU, daemons),
# namespaces, veths, cgroups and state dirs. The daemons of all of them stop at once
# (libvirtd takes a few seconds to shut down).
remove_hosts() {
  local name ns d dom pids="" pid
  for name in "$@"; do
    if [ -n "$(daemon_pid "$name" libvirtd)" ] && answers "$name"; then
      for dom in $(virsh_host "$name" list --name 2>/dev/null || true); do
        virsh_host "$name" destroy "$dom" >/dev/null 2>&1 || true
      done
    fi
    for pid in $(daemon_pid "$name" libvirtd) $(daemon_pid "$name" virtlogd); do
      kill -TERM "$pid" 2>/dev/null || true
      pids="$pids $pid"
    done
  done
  # shellcheck disable=SC2086
  [ -z "$pids" ] || wait_gone $pids
  for name in "$@"; do
    ns="$(host_ns "$name")"
    d="$(host_dir "$name")"
    if [ -e /run/netns/"$ns" ]; then
      pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
      if [ -n "${pids// /}" ]; then
        log "$name: killing what is left in $ns: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone $pids
      fi
      ip netns del "$ns"
    fi
    ip link del "$ns" 2>/dev/null || true
    if [ -f "$d/cgroups" ]; then
      local dir
      while read -r _ _ _ dir; do
        if [ -d "$dir" ]; then
          find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || log "$name: could not remove cgroup $dir"
        fi
      done <"$d/cgroups"
    fi
    rm -rf "$d"
    log "$name removed"
  done
}

# --- commands ---------------------------------------------------------------------------------------

cmd_up() {
  local n="${1:-}"
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt "$kMaxHosts" ]; then
    die "usage: $0 up N (1 <= N <= $kMaxHosts)"
  fi
  ensure_tools
  mkdir -p "$lab_dir"
  local name i want=()
  for ((i = 1; i <= n; i++)); do want+=("hv$i"); done
  local extra=()
  for name in $(lab_hosts); do
    [ "$(host_index "$name")" -gt "$n" ] && extra+=("$name")
  done
  [ ${#extra[@]} -eq 0 ] || remove_hosts "${extra[@]}"
  ensure_bridge
  for name in "${want[@]}"; do ensure_netns "$name"; done
  if [ -z "$(caps_seed)" ]; then
    # Nothing to seed the QEMU capabilities cache from: one host probes, alone.
    ensure_state hv1
    start_daemons hv1
    wait_answering hv1
  fi
  for name in "${want[@]}"; do ensure_state "$name"; done
  start_daemons "${want[@]}"
  wait_answering "${want[@]}"
  ensure_templates hv1
  for name in "${want[@]}"; do ensure_pool "$name"; done
  log "$n host(s) up; templates $lab_dir/template.xml, $lab_dir/template-idle.xml"
  for name in "${want[@]}"; do echo "$name $(host_uri "$name")"; done
}

cmd_down() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  local hosts
  read -r -a hosts <<<"$(lab_hosts | tr '\n' ' ')"
  [ ${#hosts[@]} -eq 0 ] || remove_hosts "${hosts[@]}"
  ip link del "$kBridge" 2>/dev/null || true
  rm -rf "$lab_dir"
  log "down"
}

cmd_status() {
  local name state
  for name in $(lab_hosts); do
    if [ -z "$(daemon_pid "$name" libvirtd)" ]; then
      state=stopped
    elif answers "$name"; then
      state=running
    else
      state=unreachable
    fi
    echo "$name $(host_uri "$name") $state"
  done
}

known_host() {
  valid_name "${1:-}" || die "usage: $0 $2 hvI"
  if [ ! -d "$(host_dir "$1")" ] || [ ! -e /run/netns/"$(host_ns "$1")" ]; then
    die "$1 is not a lab host (run '$0 up N')"
  fi
}

cmd_host_stop() {
  known_host "${1:-}" host-stop
  local name="$1" pid
  pid="$(daemon_pid "$name" libvirtd)"
  if [ -z "$pid" ]; then
    log "$name: libvirtd is not running"
    return 0
  fi
  kill -KILL "$pid"
  wait_gone "$pid"
  log "$name: libvirtd (pid $pid) killed; its guests and virtlogd keep running"
}

cmd_host_start() {
  known_host "${1:-}" host-start
  local name="$1"
  ensure_tools
  ensure_bridge
  ensure_netns "$name"
  ensure_state "$name"
  start_daemons "$name"
  wait_answering "$name"
  log "$name: libvirtd (pid $(daemon_pid "$name" libvirtd)) answers on $(host_uri "$name")"
}

# One command at a time (two tests must not build or tear down the lab at once): a
# lock on this script itself (nothing left behind), fd 9, which launch() closes for
# the daemons.
lock() {
  case "$lab_dir" in
    "" | /) die "FLEET_LAB_DIR must name a directory, not '$lab_dir'" ;;
  esac
  exec 9<"${BASH_SOURCE[0]}"
  flock -w "$wait_seconds" 9 || die "another fleet-lab.sh has been running for ${wait_seconds}s"
}

case "${1:-}" in
  up | down | status | host-stop | host-start) lock ;;
esac
case "${1:-}" in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  host-stop) cmd_host_stop "${2:-}" ;;
  host-start) cmd_host_start "${2:-}" ;;
  *)
    echo "usage: $0 up N | down | status | host-stop NAME | host-start NAME" >&2
    exit 2
    ;;
esac
