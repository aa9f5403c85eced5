#!/usr/bin/env python3
"""Draws the autoscaler dashboard's panels from the series the proof test
queried (tests/dashboards/test_dashboards.py --dump FILE) into a PNG, laid out
like the Grafana dashboard. Used by render-preview.sh; needs python3-matplotlib.

  render_preview.py DUMP.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, GRID, TEXT = "#111217", "#181b1f", "#2c3235", "#ccccdc"
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff",
           "#ff780a"]
STATE_COLORS = {
    "Condition states": {0: "#2c3235", 1: "#ff9830", 2: "#f2495c"},
    "Source health": {0: "#f2495c", 1: "#73bf69"},
}
STATE_NAMES = {
    "Condition states": {0: "inactive", 1: "pending", 2: "firing"},
    "Source health": {0: "down", 1: "up"},
}
LAYOUT = ["Members against desired and bounds", "Metric value against thresholds",
          "Condition states", "Scale actions by result", "Source health", "Source values"]


def style(ax, title):
    ax.set_facecolor(PANEL)
    ax.set_title(title, color=TEXT, fontsize=10, loc="left")
    ax.tick_params(colors=TEXT, labelsize=8)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.grid(color=GRID, linewidth=0.6)
    ax.set_xlabel("seconds since the agent started", color=TEXT, fontsize=8)


def timeseries(ax, panel, t0, bars=False):
    for i, s in enumerate(panel["series"]):
        xs = [x - t0 for x, _ in s["values"]]
        ys = [y for _, y in s["values"]]
        color = PALETTE[i % len(PALETTE)]
        dashed = "threshold" in s["legend"] or s["legend"] in ("min", "max")
        if bars:
            ax.bar(xs, ys, width=1.0, color=color, label=s["legend"], alpha=0.85)
        else:
            ax.step(xs, ys, where="post", color=color, label=s["legend"],
                    linestyle="--" if dashed else "-", linewidth=1.2 if dashed else 1.8)
    if panel["series"]:
        leg = ax.legend(fontsize=7, facecolor=PANEL, edgecolor=GRID, loc="upper left",
                        ncol=2)
        for t in leg.get_texts():
            t.set_color(TEXT)


def timeline(ax, title, panel, t0):
    colors, names = STATE_COLORS[title], STATE_NAMES[title]
    labels = []
    for row, s in enumerate(panel["series"]):
        labels.append(s["legend"])
        vals = s["values"]
        for j, (x, y) in enumerate(vals):
            x_end = vals[j + 1][0] if j + 1 < len(vals) else x + 1
            ax.broken_barh([(x - t0, x_end - x)], (row - 0.4, 0.8),
                           color=colors.get(int(y), "#5794f2"))
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.grid(False)
    for value, color in colors.items():
        ax.plot([], [], color=color, linewidth=6, label=names[value])
    leg = ax.legend(fontsize=7, facecolor=PANEL, edgecolor=GRID, loc="upper left", ncol=3)
    for t in leg.get_texts():
        t.set_color(TEXT)
    ax.set_ylim(-0.6, max(len(labels), 1) - 0.4 + 0.8)


def last(panels, title):
    series = panels.get(title, {}).get("series", [])
    return {s["legend"]: s["values"][-1][1] for s in series if s["values"]}


def main(dump_path, out_path):
    with open(dump_path) as f:
        dump = json.load(f)
    panels = dump["panels"]
    t0 = min(v[0] for p in panels.values() for s in p["series"] for v in s["values"])
    fig, axes = plt.subplots(3, 2, figsize=(14, 11), facecolor=BG)
    for ax, title in zip(axes.flat, LAYOUT):
        style(ax, title)
        panel = panels.get(title, {"series": []})
        if title in STATE_COLORS:
            timeline(ax, title, panel, t0)
        else:
            timeseries(ax, panel, t0, bars=panel.get("type") == "timeseries"
                       and "actions" in title)
            if panel.get("unit") == "none":
                ax.yaxis.get_major_locator().set_params(integer=True)
    stats = {**last(panels, "Running"), **last(panels, "Desired"), **last(panels, "Min / max")}
    summary = "  ·  ".join("%s %g" % (k, v) for k, v in stats.items())
    fig.suptitle("virtscale / Autoscaler  —  group %s   (%s)" % (dump["group"], summary),
                 color=TEXT, fontsize=13, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out_path, dpi=90, facecolor=BG)
    print("wrote", out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
