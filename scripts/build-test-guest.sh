#!/usr/bin/env bash
# Builds the guest images the end-to-end tests boot, from nothing but Debian tools.
#
#   scripts/build-test-guest.sh OUTDIR
#
# OUTDIR/busy.img   raw disk whose boot sector spins forever (`jmp $`: EB FE,
#                   signature 55 AA at 510). Booted from a writable IDE disk it
#                   keeps one vCPU at 100% with no operating system at all.
# OUTDIR/idle.img   the same with `cli; hlt` (FA F4): the vCPU halts for good,
#                   so the guest uses almost no CPU (a diskless guest keeps
#                   SeaBIOS polling for a boot device at ~10% under KVM).
#
#   scripts/build-test-guest.sh --balloon OUTDIR
#
# also builds a Linux guest that reports balloon memory statistics:
# OUTDIR/vmlinuz    Debian's kernel (linux-image-amd64, fetched with apt-get download,
#                   unpacked, never installed on the host)
# OUTDIR/initrd.img busybox-static + the virtio balloon modules; its /init loads them,
#                   then idles, or spins one CPU when the kernel command line has
#                   `virtscale.load=busy`; `virtscale.fill=MB` first fills MB of
#                   guest memory (a tmpfs file). Boot it with <kernel>/<initrd>, 128 MiB
#                   and <memballoon model='virtio'><stats period='1'/></memballoon>.
#                   Boots under TCG (type 'qemu'); under this host's nested KVM the
#                   kernel hangs after decompression (see tests/e2e/README.md).
set -euo pipefail

balloon=0
if [ "${1:-}" = "--balloon" ]; then
  balloon=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--balloon] OUTDIR" >&2
  exit 2
fi
outdir="$(mkdir -p "$1" && cd "$1" && pwd)"

# write_boot_image NAME HEXCODE: one 512-byte boot sector holding HEXCODE (printf
# escapes), zero padding and the signature 55 AA at offset 510, padded to 1 MiB so
# that every firmware sees a plausible disk.
write_boot_image() {
  local name="$1" code="$2" tmp size sig
  tmp="$(mktemp "$outdir/.$name.XXXXXX")"
  trap 'rm -f "$tmp"; trap - RETURN' RETURN
  {
    printf "$code"
    head -c $((510 - $(printf "$code" | wc -c))) /dev/zero
    printf '\x55\xaa'
  } >"$tmp"
  truncate -s 1M "$tmp"
  size="$(stat -c %s "$tmp")"
  sig="$(od -An -tx1 -j510 -N2 "$tmp" | tr -d ' \n')"
  if [ "$size" -ne 1048576 ] || [ "$sig" != "55aa" ]; then
    echo "build-test-guest: bad $name image (size $size, signature $sig)" >&2
    return 1
  fi
  chmod 0644 "$tmp"
  mv "$tmp" "$outdir/$name.img"
  echo "$outdir/$name.img"
}

write_boot_image busy '\xeb\xfe'              # jmp $
write_boot_image idle '\xfa\xf4\xeb\xfc'      # cli; hlt; jmp back to cli

[ "$balloon" -eq 1 ] || exit 0

# --- Linux guest with virtio_balloon -------------------------------------------
work="$(mktemp -d "$outdir/.kernel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
(
  cd "$work"
  kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')"
  if [ -z "$kpkg" ]; then
    echo "build-test-guest: linux-image-amd64 unknown to apt (run apt-get update)" >&2
    exit 1
  fi
  apt-get -o APT::Sandbox::User=root download "$kpkg" busybox-static >/dev/null
  dpkg-deb -x busybox-static_*.deb bb
  dpkg-deb --fsys-tarfile "$kpkg"_*.deb |
    tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*'
)
cp "$work"/boot/vmlinuz-* "$outdir/vmlinuz"
python3 - "$work" "$outdir/initrd.img" <<'PY'
# Writes a gzip'd newc cpio archive (the initramfs format) with the Python stdlib.
import glob, gzip, os, stat, sys

work, out = sys.argv[1], sys.argv[2]
moddir = glob.glob(os.path.join(work, "lib/modules/*/kernel/drivers/virtio"))[0]
# Dependency order of Debian 6.1's virtio modules.
mods = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
        "virtio_pci", "virtio_balloon"]
init = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for arg in $(/bin/busybox cat /proc/cmdline); do
  case "$arg" in
    virtscale.fill=*)
      fill="${arg#virtscale.fill=}"
      /bin/busybox mkdir -p /fill
      /bin/busybox mount -t tmpfs -o size=${fill}m fill /fill
      /bin/busybox dd if=/dev/zero of=/fill/data bs=1M count="$fill" 2>/dev/null ;;
  esac
done
# After the fill, so that the first balloon statistics already show it.
for m in %s; do /bin/busybox insmod /lib/virtio/$m.ko; done
echo "virtscale-guest: up"
case " $(/bin/busybox cat /proc/cmdline) " in
  *" virtscale.load=busy "*) while :; do :; done ;;
esac
while :; do /bin/busybox sleep 3600; done
""" % " ".join(mods)

entries = [("bin", stat.S_IFDIR | 0o755, b""), ("lib", stat.S_IFDIR | 0o755, b""),
           ("lib/virtio", stat.S_IFDIR | 0o755, b""), ("dev", stat.S_IFDIR | 0o755, b""),
           ("init", stat.S_IFREG | 0o755, init.encode()),
           ("bin/busybox", stat.S_IFREG | 0o755,
            open(os.path.join(work, "bb/bin/busybox"), "rb").read())]
for m in mods:
    entries.append(("lib/virtio/%s.ko" % m, stat.S_IFREG | 0o644,
                    open(os.path.join(moddir, m + ".ko"), "rb").read()))

def pad(n):
    return b"\0" * ((4 - n % 4) % 4)

with gzip.open(out, "wb") as f:
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nm = name.encode() + b"\0"
        hdr = b"070701" + b"".join(b"%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0))
        f.write(hdr + nm + pad(len(hdr) + len(nm)) + data + pad(len(data)))
PY
echo "$outdir/vmlinuz"
echo "$outdir/initrd.img"
