#!/usr/bin/env bash
# Builds the .deb with cpack, checks its layout (conffiles = every file under
# /etc, only the monitoring-only config in /etc/virtscale, examples and rule
# tests in /usr/share/doc/virtscale/examples, a DEP-5 copyright, docs/), installs
# it on this machine, checks the files, the binary, the unit (systemd-analyze
# verify, sandbox directives) and /run/virtscale for `file` sources
# (docs/packaging.md), runs the installed agent, purges the package and checks
# nothing is left, then upgrades a package of the 0.1.0 layout (examples under
# /etc/virtscale) to this one. Needs root; exits 77 (skip) otherwise.
# Usage: test_deb.sh BUILD_DIR [SOURCE_DIR]
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to install a package"; exit 77; }
if dpkg-query -W -f='${Status}' virtscale 2>/dev/null | grep -q "install ok installed"; then
  echo "SKIP: a virtscale package is already installed here; not touching it"; exit 77
fi
if [ -e /run/virtscale ]; then
  echo "SKIP: /run/virtscale exists without the package; not touching it"; exit 77
fi
passed=0; failed=0
work=$(mktemp -d /tmp/virtscale-deb-test.XXXXXX)
log=$work/check.log
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >"$log" 2>&1; then passed=$((passed + 1)); echo "PASS $what"
  else failed=$((failed + 1)); echo "FAIL $what"; sed 's/^/    /' "$log"; fi
}
same() {  # same A_FILE B_FILE: equal line sets, a diff otherwise
  diff <(sort -u "$1") <(sort -u "$2")
}

(cd "$build" && rm -f virtscale_*.deb && cpack -G DEB >/dev/null)
deb=$(ls "$build"/virtscale_*.deb)
echo "package: $deb"
dpkg -c "$deb"
dpkg -I "$deb" | sed -n '/Package:/,$p'

# --- The package as built --------------------------------------------------
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' >"$work/deb-files"
grep '^/etc/' "$work/deb-files" >"$work/deb-etc" || true
dpkg-deb -I "$deb" conffiles >"$work/deb-conffiles" 2>/dev/null || true
check "conffiles list equals the files under /etc in the .deb" same "$work/deb-conffiles" "$work/deb-etc"
check "only the config is under /etc/virtscale in the .deb" \
  bash -c "diff <(grep '^/etc/virtscale/' '$work/deb-etc') <(echo /etc/virtscale/virtscale.yml)"

cleanup() {
  rm -f /run/virtscale/.q /run/virtscale/queue_depth
  dpkg --purge virtscale >/dev/null 2>&1 || true; rm -rf "$work"
}
trap cleanup EXIT
check "package installs" dpkg -i "$deb"

doc=/usr/share/doc/virtscale
for f in /usr/bin/virtscale /etc/virtscale/virtscale.yml /usr/lib/systemd/system/virtscale.service \
         /usr/lib/tmpfiles.d/virtscale.conf /etc/default/virtscale \
         /usr/share/man/man1/virtscale.1.gz /usr/share/virtscale/dashboards \
         /usr/share/virtscale/prometheus $doc/README.md $doc/CHANGELOG.md $doc/copyright \
         $doc/docs/packaging.md $doc/docs/configuration.md \
         $doc/examples/virtscale.yml $doc/examples/demo.yml \
         $doc/examples/rules/demo.yml $doc/examples/rules/web.yml \
         $doc/examples/templates/demo.xml $doc/examples/templates/web.xml \
         $doc/examples/rules/tests/demo.test.yml $doc/examples/rules/tests/web.test.yml; do
  check "installed $f" test -e "$f"
done

# --- /etc: the monitoring-only config, every file a conffile ---------------
dpkg-query -W -f='${Conffiles}\n' virtscale | awk 'NF {print $1}' >"$work/conffiles"
dpkg -L virtscale | grep '^/etc/' | while read -r f; do [ -d "$f" ] || echo "$f"; done >"$work/etc-files"
check "dpkg's conffiles equal the package's files under /etc" same "$work/conffiles" "$work/etc-files"
check "no rule file or template under /etc/virtscale" \
  sh -c "find /etc/virtscale -mindepth 1 ! -name virtscale.yml | grep . && exit 1 || exit 0"
check "installed config is valid and monitoring only (no scaling group)" \
  sh -c "/usr/bin/virtscale check config /etc/virtscale/virtscale.yml | tee /dev/stderr | grep -q 'SUCCESS: 0 scaling group(s)'"

# --- Examples: the source tree's config/, usable where installed -----------
check "every file of config/ is installed unchanged in $doc/examples" sh -c "
  cd '$src/config' && find . -type f | while read -r f; do cmp \"\$f\" '$doc/examples/'\"\$f\" || exit 1; done"
check "installed example configs check clean" sh -c \
  "/usr/bin/virtscale check config $doc/examples/virtscale.yml && /usr/bin/virtscale check config $doc/examples/demo.yml"
check "installed example rule tests pass" sh -c "/usr/bin/virtscale test rules $doc/examples/rules/tests/*.test.yml"

# --- copyright: DEP-5 ------------------------------------------------------
check "copyright is machine-readable (DEP-5)" python3 - "$doc/copyright" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
paras = [p for p in re.split(r"\n[ \t]*\n", text.strip()) if p.strip()]
def fields(p):
    d, key = {}, None
    for line in p.splitlines():
        if line[:1] in (" ", "\t"):
            assert key, f"continuation line before any field: {line!r}"
            d[key] += "\n" + line.strip()
            continue
        m = re.match(r"([!-9;-~]+):[ \t]*(.*)$", line)
        assert m, f"not a field: {line!r}"
        key = m.group(1).lower()
        assert key not in d, f"field {key} twice in one paragraph"
        d[key] = m.group(2)
    return d
header, rest = fields(paras[0]), [fields(p) for p in paras[1:]]
assert header.get("format", "").rstrip("/") == \
    "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0", "Format field"
assert header.get("upstream-name") == "virtscale", "Upstream-Name"
files = [p for p in rest if "files" in p]
assert files and files[0]["files"].split() == ["*"], "a first Files: * paragraph"
texts = {p["license"].split("\n")[0].strip(): True for p in rest if "files" not in p and "license" in p
         and "\n" in p["license"]}
for p in files:
    for k in ("copyright", "license"):
        assert p.get(k, "").strip(), f"Files {p['files']}: {k} missing"
    first, _, body = p["license"].partition("\n")
    assert body.strip() or first.strip() in texts, f"no text for license {first.strip()}"
for p in rest:
    assert "files" in p or "license" in p, f"paragraph without Files or License: {p}"
print(f"DEP-5: {len(files)} Files paragraph(s)")
EOF

# --- docs/, as the installed README links to it -----------------------------
check "every file of docs/ is installed unchanged in $doc/docs" sh -c "
  cd '$src/docs' && find . -type f | while read -r f; do cmp \"\$f\" '$doc/docs/'\"\$f\" || exit 1; done"
check "the installed README's links into docs/ resolve" sh -c "
  cd $doc && grep -o '](docs/[^)#]*' README.md | cut -c3- | sort -u | tee /dev/stderr | while read -r f; do test -f \"\$f\" || { echo missing \$f; exit 1; }; done"

# --- The unit's sandbox and /run/virtscale for `file` sources --------------
unit=/usr/lib/systemd/system/virtscale.service
for d in PrivateTmp=true ProtectHome=true ProtectSystem=strict ReadOnlyPaths=-/run/virtscale; do
  check "unit has $d" grep -qx "$d" "$unit"
done
check "unit comments say where a file source may live and why not /tmp or /home" sh -c "
  grep '^#' $unit | grep -q /run/virtscale && grep '^#' $unit | grep -q PrivateTmp && grep '^#' $unit | grep -q ProtectHome"
check "man page says where a file source may live and why not /tmp or /home" sh -c "
  zcat /usr/share/man/man1/virtscale.1.gz | grep -q 'run/virtscale' &&
  zcat /usr/share/man/man1/virtscale.1.gz | grep -q PrivateTmp && zcat /usr/share/man/man1/virtscale.1.gz | grep -q ProtectHome"
check "docs/packaging.md says where a file source may live and why not /tmp or /home" sh -c "
  grep -q '/run/virtscale' $doc/docs/packaging.md && grep -q PrivateTmp $doc/docs/packaging.md &&
  grep -q ProtectHome $doc/docs/packaging.md"
check "/run/virtscale exists after install: directory root:root 755" \
  sh -c "stat -c '%F %U:%G %a' /run/virtscale | tee /dev/stderr | grep -qx 'directory root:root 755'"
check "tmpfiles.d creates /run/virtscale as at boot" sh -c \
  "rmdir /run/virtscale && systemd-tmpfiles --create virtscale.conf &&
   stat -c '%F %U:%G %a' /run/virtscale | grep -qx 'directory root:root 755'"

check "declares shared-library dependencies" sh -c "dpkg -s virtscale | grep -E '^Depends:.*libvirt0'"
check "virtscale --version runs" sh -c "/usr/bin/virtscale --version | grep -q '^virtscale '"
check "man page renders" sh -c "man -l /usr/share/man/man1/virtscale.1.gz 2>/dev/null | grep -q 'check config' || zcat /usr/share/man/man1/virtscale.1.gz | grep -q 'check config'"
check "systemd-analyze verify is clean" sh -c \
  "out=\$(systemd-analyze verify $unit 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"

# Start and stop the installed agent the way the unit does (systemd may not be PID 1 here).
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port)
/usr/bin/virtscale --config.file=/etc/virtscale/virtscale.yml --libvirt.uri=test:///default \
  --web.listen-address=127.0.0.1:$port >"$work/agent.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
check "installed agent starts and serves /metrics" \
  sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q '^libvirt_up 1'"
check "installed agent has no scaling group" \
  sh -c "curl -sf http://127.0.0.1:$port/api/v1/groups | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"data\"] != [])'"
kill -TERM $pid
check "installed agent stops cleanly on SIGTERM" wait $pid

# The documented place for a file source, as docs/packaging.md shows it.
echo 42 >/run/virtscale/.q && mv /run/virtscale/.q /run/virtscale/queue_depth
cat >"$work/file-source.yml" <<EOF
libvirt: {uri: "test:///default", sample_interval: 1s}
sources:
  queue: {type: file, path: /run/virtscale/queue_depth, interval: 1s}
EOF
port=$(free_port)
/usr/bin/virtscale --config.file="$work/file-source.yml" --web.listen-address=127.0.0.1:$port \
  >"$work/agent-file.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/metrics" 2>/dev/null | grep -q '^virtscale_source_value{source="queue"} 42' && break
  sleep 0.1
done
check "installed agent reads a file source in /run/virtscale" \
  sh -c "curl -sf http://127.0.0.1:$port/metrics | grep '^virtscale_source_value{source=\"queue\"} 42'"
kill -TERM $pid; wait $pid || true
rm -f /run/virtscale/queue_depth

check "package removes" dpkg --purge virtscale
check "binary removed" test ! -e /usr/bin/virtscale
check "config removed on purge" test ! -e /etc/virtscale
check "tmpfiles.d entry removed" test ! -e /usr/lib/tmpfiles.d/virtscale.conf
check "/run/virtscale removed on purge (it was empty)" test ! -e /run/virtscale
check "docs and examples removed" test ! -e $doc

# --- Upgrade from 0.1.0, which shipped the examples under /etc/virtscale -----
# Its layout, rebuilt from this package: rules/ (with rules/tests/, plain files)
# and templates/ under /etc/virtscale, the rules and templates as conffiles.
old=$work/old
dpkg-deb -R "$deb" "$old"
rm -rf "$old/usr/lib/tmpfiles.d" "$old/DEBIAN/preinst" "$old/DEBIAN/md5sums"
mkdir -p "$old/etc/virtscale/rules/tests" "$old/etc/virtscale/templates"
old_conf="rules/demo.yml rules/web.yml templates/demo.xml templates/web.xml"
for f in $old_conf rules/tests/demo.test.yml rules/tests/web.test.yml; do
  cp "$src/config/$f" "$old/etc/virtscale/$f"
done
{ echo /etc/virtscale/virtscale.yml; for f in $old_conf; do echo "/etc/virtscale/$f"; done
  echo /etc/default/virtscale; } >"$old/DEBIAN/conffiles"
for f in postinst postrm; do printf '#!/bin/sh\nexit 0\n' >"$old/DEBIAN/$f"; chmod 755 "$old/DEBIAN/$f"; done
dpkg-deb -b --root-owner-group "$old" "$work/virtscale-0.1.0-layout.deb" >/dev/null
check "0.1.0-layout package installs" dpkg -i "$work/virtscale-0.1.0-layout.deb"
echo "# edited here" >>/etc/virtscale/rules/web.yml
check "upgrade from the 0.1.0 layout" dpkg -i "$deb"
check "upgrade removes 0.1.0's unmodified examples, rule tests and templates/" sh -c "
  for f in rules/demo.yml rules/tests templates; do ! test -e /etc/virtscale/\$f || { echo left: \$f; exit 1; }; done"
check "upgrade keeps 0.1.0's modified rules/web.yml as rules/web.yml.dpkg-bak" sh -c \
  "test ! -e /etc/virtscale/rules/web.yml && grep -q '# edited here' /etc/virtscale/rules/web.yml.dpkg-bak"
dpkg-query -W -f='${Conffiles}\n' virtscale | awk 'NF {print $1}' >"$work/conffiles"
check "after the upgrade the conffiles are the config and /etc/default/virtscale" \
  bash -c "diff <(sort '$work/conffiles') <(printf '%s\n' /etc/default/virtscale /etc/virtscale/virtscale.yml)"
check "purge after the upgrade leaves no /etc/virtscale" sh -c "dpkg --purge virtscale && test ! -e /etc/virtscale"
trap - EXIT
rm -rf "$work"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
