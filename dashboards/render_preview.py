#!/usr/bin/env python3
"""Draws the autoscaler dashboard's panels from the series the proof test
queried (tests/dashboards/test_dashboards.py --dump FILE) into a PNG, laid out
like the Grafana dashboard. Used by render-preview.sh; needs python3-matplotlib.

  render_preview.py DUMP.json OUT.png
"""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

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


RATIO_RE = re.compile(r"(cpu|memory):")  # the dashboard's right-axis override
RESULT_COLORS = {"up ok": "#73bf69", "down ok": "#5794f2", "up error": "#f2495c",
                 "down error": "#ff9830"}


def legend_box(ax, handles=None, labels=None, ncol=2):
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        leg = ax.legend(handles, labels, fontsize=7, facecolor=PANEL, edgecolor=GRID,
                        loc="upper right", ncol=ncol)
        for t in leg.get_texts():
            t.set_color(TEXT)


def timeseries(ax, panel, t0):
    """Lines; series matching RATIO_RE go on a right-hand percent axis."""
    right = None
    for i, s in enumerate(panel["series"]):
        target = ax
        if RATIO_RE.search(s["legend"]) and panel.get("unit") == "short":
            if right is None:
                right = ax.twinx()
                right.tick_params(colors=TEXT, labelsize=8)
                right.yaxis.set_major_formatter(PercentFormatter(1.0))
                right.set_ylim(0, 1.1)
            target = right
        dashed = "threshold" in s["legend"] or s["legend"] in ("min", "max")
        target.step([x - t0 for x, _ in s["values"]], [y for _, y in s["values"]], where="post",
                    color=PALETTE[i % len(PALETTE)], label=s["legend"],
                    linestyle="--" if dashed else "-", linewidth=1.2 if dashed else 1.8)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + [l + " (right axis)" for l in l2]
    legend_box(ax, handles, labels)


def stacked_bars(ax, panel, t0):
    """Bars per timestamp, stacked across series like the Grafana panel."""
    bottoms = {}
    for s in panel["series"]:
        xs = [x - t0 for x, _ in s["values"]]
        ys = [y for _, y in s["values"]]
        base = [bottoms.get(x, 0.0) for x in xs]
        ax.bar(xs, ys, bottom=base, width=1.0, label=s["legend"],
               color=RESULT_COLORS.get(s["legend"], "#b877d9"))
        for x, y, b0 in zip(xs, ys, base):
            bottoms[x] = b0 + y
    legend_box(ax)


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
    legend_box(ax, ncol=3)
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
            if title == "Scale actions by result":
                stacked_bars(ax, panel, t0)
            else:
                timeseries(ax, panel, t0)
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
