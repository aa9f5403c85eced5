#!/usr/bin/env bash
# Builds the .deb with cpack, installs it on this machine, checks the files, the
# binary, the unit (systemd-analyze verify), runs the installed agent, then
# purges the package and checks nothing is left. Needs root; exits 77 (skip)
# otherwise.  Usage: test_deb.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to install a package"; exit 77; }
if dpkg-query -W -f='${Status}' virtscale 2>/dev/null | grep -q "install ok installed"; then
  echo "SKIP: a virtscale package is already installed here; not touching it"; exit 77
fi
passed=0; failed=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >/tmp/virtscale-deb-check.log 2>&1; then passed=$((passed + 1)); echo "PASS $what"
  else failed=$((failed + 1)); echo "FAIL $what"; sed 's/^/    /' /tmp/virtscale-deb-check.log; fi
}

(cd "$build" && rm -f virtscale_*.deb && cpack -G DEB >/dev/null)
deb=$(ls "$build"/virtscale_*.deb)
echo "package: $deb"
dpkg -c "$deb"
dpkg -I "$deb" | sed -n '/Package:/,$p'

cleanup() { dpkg --purge virtscale >/dev/null 2>&1 || true; }
trap cleanup EXIT
check "package installs" dpkg -i "$deb"
for f in /usr/bin/virtscale /etc/virtscale/virtscale.yml /etc/virtscale/rules/web.yml \
         /etc/virtscale/templates/web.xml /lib/systemd/system/virtscale.service \
         /etc/default/virtscale /usr/share/man/man1/virtscale.1.gz \
         /usr/share/virtscale/dashboards /usr/share/virtscale/prometheus; do
  check "installed $f" test -e "$f"
done
check "declares shared-library dependencies" sh -c "dpkg -s virtscale | grep -E '^Depends:.*libvirt0'"
check "virtscale --version runs" sh -c "/usr/bin/virtscale --version | grep -q '^virtscale '"
check "man page renders" sh -c "man -l /usr/share/man/man1/virtscale.1.gz 2>/dev/null | grep -q 'check config' || zcat /usr/share/man/man1/virtscale.1.gz | grep -q 'check config'"
check "installed config is valid" /usr/bin/virtscale check config /etc/virtscale/virtscale.yml
check "systemd-analyze verify is clean" sh -c \
  "out=\$(systemd-analyze verify /lib/systemd/system/virtscale.service 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"

# Start and stop the installed agent the way the unit does (systemd may not be PID 1 here).
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
/usr/bin/virtscale --config.file=/etc/virtscale/virtscale.yml --libvirt.uri=test:///default \
  --web.listen-address=127.0.0.1:$port >/tmp/virtscale-deb-agent.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
check "installed agent starts and serves /metrics" \
  sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q '^libvirt_up 1'"
kill -TERM $pid
check "installed agent stops cleanly on SIGTERM" wait $pid

check "package removes" dpkg --purge virtscale
check "binary removed" test ! -e /usr/bin/virtscale
check "config removed on purge" test ! -e /etc/virtscale/virtscale.yml
trap - EXIT
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
