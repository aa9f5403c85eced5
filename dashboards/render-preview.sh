#!/usr/bin/env bash
# Redraws docs/dashboards/autoscaler.png from a real run: the proof test starts
# the agent on libvirt's test driver and a Prometheus scraping it, the group
# scales up to its max, the queue is drained after 30 s so it scales down again,
# and every autoscaler panel query is read back over the run and drawn.
#   dashboards/render-preview.sh [path/to/virtscale]   (default build/virtscale)
# Needs python3-matplotlib (apt-get install python3-matplotlib); the test
# suite does not.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-build/virtscale}
data=$(mktemp --suffix=.json)
trap 'rm -f "$data"' EXIT
python3 tests/dashboards/test_dashboards.py "$binary" --dump "$data" --hold 90 --drain-after 30
mkdir -p docs/dashboards
# Debian's python3-matplotlib is installed for the system interpreter.
/usr/bin/python3 dashboards/render_preview.py "$data" docs/dashboards/autoscaler.png
