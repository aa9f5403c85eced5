#!/usr/bin/env python3
"""Generates the Grafana dashboards in this folder (virtscale-*.json).

The JSON files are committed so they can be imported as they are; this script
is their source. Edit it, then run `python3 dashboards/generate.py` and commit
both. `python3 dashboards/generate.py --check` exits 1 when a committed file
differs from what the script produces (the proof test runs it).

Conventions: every query filters on `instance=~"$instance"`, counters go
through rate() with `$__rate_interval`, values stay in base units and the panel
sets the Grafana unit (s, bytes, Bps, percentunit, ops). Top-N panels read the
recording rules in prometheus/virtscale.rules.yml so they stay cheap on hosts
with many domains.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

DS = {"type": "prometheus", "uid": "${datasource}"}
INST = 'instance=~"$instance"'
DOM = INST + ',domain="$domain"'
GRP = INST + ',group="$group"'
RI = "$__rate_interval"


# ---------------------------------------------------------------- building blocks

def target(expr, legend, ref, instant=False):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
         "editorMode": "code", "range": not instant}
    if instant:
        t["instant"] = True
        t["format"] = "table"
    return t


def _targets(queries, instant=False):
    return [target(q[0], q[1], chr(ord("A") + i), instant) for i, q in enumerate(queries)]


def timeseries(title, queries, unit, description="", stack=False, min_zero=True, max_value=None,
               overrides=None, draw="line", legend_calcs=("mean", "max", "lastNotNull")):
    defaults = {
        "unit": unit,
        "custom": {"drawStyle": draw, "lineWidth": 1, "fillOpacity": 10 if draw == "line" else 80,
                   "showPoints": "never", "spanNulls": False,
                   "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
        "color": {"mode": "palette-classic"},
    }
    if min_zero:
        defaults["min"] = 0
    if max_value is not None:
        defaults["max"] = max_value
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": list(legend_calcs)},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title, queries, unit, description="", thresholds=None, mappings=None, color_mode="value"):
    return {
        "type": "stat", "title": title, "description": description, "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": {
            "unit": unit,
            "thresholds": {"mode": "absolute",
                           "steps": thresholds or [{"color": "green", "value": None}]},
            "mappings": mappings or [],
            "color": {"mode": "thresholds"}}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": color_mode, "graphMode": "area", "textMode": "auto",
                    "justifyMode": "auto", "orientation": "auto"},
    }


def table(title, queries, unit, description=""):
    """An instant top-N table: one row per series, the value column in `unit`."""
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": _targets(queries, instant=True),
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"align": "auto"}},
                        "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        "transformations": [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True}}}],
    }


def state_timeline(title, queries, description="", mappings=None, thresholds=None):
    return {
        "type": "state-timeline", "title": title, "description": description, "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": {
            "mappings": mappings or [],
            "thresholds": {"mode": "absolute",
                           "steps": thresholds or [{"color": "green", "value": None}]},
            "color": {"mode": "thresholds"},
            "custom": {"lineWidth": 0, "fillOpacity": 80}}, "overrides": []},
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                    "legend": {"displayMode": "list", "placement": "bottom"}},
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(items):
    """Assigns ids and gridPos. `items` is a list of rows (dicts) or lists of
    (panel, width, height) tuples laid out left to right."""
    panels, y, pid = [], 0, 1
    for item in items:
        if isinstance(item, dict):
            item.update(id=pid, gridPos={"h": 1, "w": 24, "x": 0, "y": y})
            panels.append(item)
            pid, y = pid + 1, y + 1
            continue
        x, height = 0, 0
        for panel, w, h in item:
            if x + w > 24:
                x, y, height = 0, y + height, 0
            panel.update(id=pid, gridPos={"h": h, "w": w, "x": x, "y": y})
            panels.append(panel)
            pid, x, height = pid + 1, x + w, max(height, h)
        y += height
    return panels


def datasource_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "includeAll": False,
            "multi": False, "options": [], "refresh": 1, "regex": ""}


def query_var(name, label, query, multi=False):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "current": {}, "hide": 0, "includeAll": multi, "multi": multi, "options": [],
            "refresh": 2, "regex": "", "sort": 1}


def instance_var():
    return query_var("instance", "Instance", "label_values(virtscale_build_info, instance)")


def dashboard(uid, title, description, variables, panels, tags):
    return {
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{"title": "virtscale", "type": "dashboards", "tags": ["virtscale"],
                   "asDropdown": True, "includeVars": True, "keepTime": True}],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": tags,
        "templating": {"list": variables},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


UP_MAPPING = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "UP", "color": "green", "index": 1}}}]
RED_GREEN = [{"color": "red", "value": None}, {"color": "green", "value": 1}]


# ---------------------------------------------------------------- host overview

def host_dashboard():
    top = 10
    items = [
        row("Host"),
        [
            (stat("libvirt", [(f"libvirt_up{{{INST}}}", "{{instance}}")], "none",
                  "1 when the agent's libvirt connection is up (libvirt_up).",
                  RED_GREEN, UP_MAPPING, "background"), 4, 4),
            (stat("Domains", [(f"sum(libvirt_domains{{{INST}}})", "domains")], "none",
                  "Domains libvirt reports, any state."), 4, 4),
            (stat("Host CPUs", [(f"libvirt_node_cpus{{{INST}}}", "{{instance}}")], "none",
                  "Logical CPUs of the host."), 4, 4),
            (stat("Host memory", [(f"libvirt_node_memory_total_bytes{{{INST}}}", "{{instance}}")],
                  "bytes", "Physical memory of the host."), 4, 4),
            (stat("Sample age", [(f"virtscale_sample_age_seconds{{{INST}}}", "{{instance}}")], "s",
                  "Age of the snapshot /metrics served: stays below the sample interval "
                  "while sampling keeps up.",
                  [{"color": "green", "value": None}, {"color": "orange", "value": 30},
                   {"color": "red", "value": 60}]), 4, 4),
            (stat("Config reload", [(f"virtscale_config_last_reload_successful{{{INST}}}",
                                     "{{instance}}")], "none",
                  "Whether the last configuration reload succeeded.",
                  RED_GREEN, [{"type": "value", "options": {
                      "0": {"text": "FAILED", "color": "red", "index": 0},
                      "1": {"text": "OK", "color": "green", "index": 1}}}], "background"), 4, 4),
        ],
        [
            (timeseries("Host CPU by mode", [
                (f"sum by (instance, mode) (rate(libvirt_node_cpu_seconds_total{{{INST}}}[{RI}]))"
                 f" / on (instance) group_left() libvirt_node_cpus{{{INST}}}",
                 "{{mode}}")], "percentunit",
                "Host CPU time by mode (virNodeGetCPUStats) as a fraction of all logical CPUs.",
                stack=True, max_value=1), 12, 8),
            (timeseries("Host CPU used by guests", [
                (f"sum by (instance) (domain:libvirt_domain_cpu_time_seconds:rate1m{{{INST}}})"
                 f" / on (instance) group_left() libvirt_node_cpus{{{INST}}}",
                 "guests {{instance}}")], "percentunit",
                "CPU time of all domains as a fraction of the host's logical CPUs.",
                max_value=1), 12, 8),
        ],
        [
            (timeseries("Host memory", [
                (f"libvirt_node_memory_total_bytes{{{INST}}}", "total"),
                (f"libvirt_node_memory_free_bytes{{{INST}}}", "free"),
                (f"sum by (instance) (libvirt_domain_info_memory_usage_bytes{{{INST}}})",
                 "allocated to domains")], "bytes",
                "Physical memory of the host, what is free, and what the domains are given."),
             12, 8),
        ],
        [
            (timeseries("Domains by state", [
                (f"count by (state_desc) (libvirt_domain_info_state{{{INST}}})", "{{state_desc}}")],
                "none", "Domains per libvirt state.", stack=True), 12, 8),
            (timeseries("Sampling", [
                (f"virtscale_sample_duration_seconds{{{INST}}}", "sample duration"),
                (f"virtscale_sample_age_seconds{{{INST}}}", "sample age"),
                (f"virtscale_scrape_collector_duration_seconds{{{INST}}}", "{{collector}}")], "s",
                "How long one sample of all domains took (and each collector in it), and the "
                "age of the snapshot served at scrape time."), 12, 8),
        ],
        row("Storage pools"),
        [
            (timeseries("Storage pool usage", [
                (f"libvirt_storage_pool_allocation_bytes{{{INST}}}"
                 f" / (libvirt_storage_pool_capacity_bytes{{{INST}}} > 0)", "{{storage_pool}}")],
                "percentunit",
                "Bytes allocated to volumes over the pool's capacity, per pool (running or "
                "degraded pools; libvirt does not measure the others).", max_value=1), 8, 8),
            (timeseries("Storage pool free space", [
                (f"libvirt_storage_pool_available_bytes{{{INST}}}", "{{storage_pool}}")], "bytes",
                "Bytes free for new volumes: a create from a template needs room for its "
                "volumes here."), 8, 8),
            (timeseries("Storage pools by state", [
                (f"count by (state) (libvirt_storage_pool_info{{{INST}}})", "{{state}}")], "none",
                "Pools per libvirt state (inactive, building, running, degraded, inaccessible).",
                stack=True), 8, 8),
        ],
        row(f"Top {top} guests"),
        [
            (timeseries("CPU (cores used)", [
                (f"topk({top}, domain:libvirt_domain_cpu_time_seconds:rate1m{{{INST}}})",
                 "{{domain}}")], "percentunit",
                "CPU time per second per domain (1 = one core busy)."), 12, 8),
            (timeseries("CPU utilisation of vCPUs", [
                (f"topk({top}, virtscale_domain_cpu_utilization_ratio{{{INST}}})", "{{domain}}")],
                "percentunit", "CPU time over the domain's vCPUs, as the autoscaler sees it.",
                max_value=1), 12, 8),
            (timeseries("Memory", [
                (f"topk({top}, libvirt_domain_info_memory_usage_bytes{{{INST}}})", "{{domain}}")],
                "bytes", "Current memory allocation per domain."), 12, 8),
            (timeseries("Memory utilisation", [
                (f"topk({top}, virtscale_domain_memory_utilization_ratio{{{INST}}})",
                 "{{domain}}")], "percentunit",
                "Guest-used memory (balloon stats), else host RSS over current memory.",
                max_value=1), 12, 8),
            (timeseries("Disk throughput (read + write)", [
                (f"topk({top}, domain:libvirt_domain_block_stats_bytes:rate1m{{{INST}}})",
                 "{{domain}}")], "Bps", "Bytes read and written per second, all disks."), 12, 8),
            (timeseries("Disk IOPS (read + write)", [
                (f"topk({top}, domain:libvirt_domain_block_stats_requests:rate1m{{{INST}}})",
                 "{{domain}}")], "ops", "Read and write requests per second, all disks."),
             12, 8),
            (timeseries("Network throughput (rx + tx)", [
                (f"topk({top}, domain:libvirt_domain_interface_stats_bytes:rate1m{{{INST}}})",
                 "{{domain}}")], "Bps", "Bytes received and sent per second, all interfaces."),
             12, 8),
            (table("Largest guests now", [
                (f"topk({top}, libvirt_domain_info_maximum_memory_bytes{{{INST}}})", "")],
                "bytes", "Maximum memory per domain, largest first."), 12, 8),
        ],
        row("Agent"),
        [
            (state_timeline("Collectors", [
                (f"virtscale_scrape_collector_success{{{INST}}}", "{{collector}}")],
                "1 when the collector succeeded in the last sample.", UP_MAPPING, RED_GREEN),
             12, 8),
            (timeseries("libvirt call timeouts", [
                (f"rate(virtscale_call_timeouts_total{{{INST}}}[{RI}])", "abandoned calls/s"),
                (f"virtscale_stuck_calls{{{INST}}}", "stuck calls"),
                (f"sum(virtscale_domain_timed_out{{{INST}}})", "domains timed out")], "short",
                "libvirt calls that exceeded libvirt.call_timeout, calls that never returned, "
                "and domains affected in the last sample."), 12, 8),
            (timeseries("HTTP requests", [
                (f"sum by (handler, code) (rate(virtscale_http_requests_total{{{INST}}}[{RI}]))",
                 "{{handler}} {{code}}")], "reqps", "Requests served per second."), 12, 8),
            (timeseries("HTTP latency (p99)", [
                (f"histogram_quantile(0.99, sum by (handler, le) "
                 f"(rate(virtscale_http_request_duration_seconds_bucket{{{INST}}}[{RI}])))",
                 "{{handler}}")], "s", "99th percentile request latency per handler."), 12, 8),
        ],
    ]
    return dashboard(
        "virtscale-host", "virtscale / Host overview",
        "One libvirt host as virtscale samples it: capacity, domains, top guests, agent health.",
        [datasource_var(), instance_var()], layout(items), ["virtscale", "libvirt"])


# ---------------------------------------------------------------- guest detail

def guest_dashboard():
    items = [
        row("CPU"),
        [
            (stat("vCPUs", [(f"libvirt_domain_info_virtual_cpus{{{DOM}}}", "vcpus")], "none"),
             4, 4),
            (stat("Max memory", [(f"libvirt_domain_info_maximum_memory_bytes{{{DOM}}}", "max")],
                  "bytes"), 4, 4),
            (stat("CPU utilisation", [(f"virtscale_domain_cpu_utilization_ratio{{{DOM}}}",
                                       "cpu")], "percentunit",
                  thresholds=[{"color": "green", "value": None},
                              {"color": "orange", "value": 0.8}, {"color": "red", "value": 0.95}]),
             4, 4),
            (stat("Memory utilisation", [(f"virtscale_domain_memory_utilization_ratio{{{DOM}}}",
                                          "memory")], "percentunit",
                  thresholds=[{"color": "green", "value": None},
                              {"color": "orange", "value": 0.8}, {"color": "red", "value": 0.95}]),
             4, 4),
            (stat("State", [(f"libvirt_domain_info_state{{{DOM}}}", "state")], "none",
                  "libvirt state code: 1 running, 3 paused, 5 shut off.",
                  mappings=[{"type": "value", "options": {
                      "0": {"text": "no state", "index": 0}, "1": {"text": "running", "index": 1},
                      "2": {"text": "blocked", "index": 2}, "3": {"text": "paused", "index": 3},
                      "4": {"text": "shutting down", "index": 4},
                      "5": {"text": "shut off", "index": 5}, "6": {"text": "crashed", "index": 6},
                      "7": {"text": "suspended", "index": 7}}}]), 8, 4),
        ],
        [
            (timeseries("Domain CPU", [
                (f"rate(libvirt_domain_info_cpu_time_seconds_total{{{DOM}}}[{RI}])", "total"),
                (f"libvirt_domain_info_virtual_cpus{{{DOM}}}", "vCPUs")], "percentunit",
                "CPU time per second of the whole domain (1 = one core), against its vCPU count."),
             8, 8),
            (timeseries("vCPU time", [
                (f"rate(libvirt_domain_vcpu_time_seconds_total{{{DOM}}}[{RI}])", "vcpu {{vcpu}}")],
                "percentunit", "Time each vCPU ran per second."), 8, 8),
            (timeseries("vCPU steal (delay)", [
                (f"rate(libvirt_domain_vcpu_delay_seconds_total{{{DOM}}}[{RI}])",
                 "vcpu {{vcpu}}")], "percentunit",
                "Time each vCPU was runnable but waited for a host CPU, per second."), 8, 8),
        ],
        row("Memory"),
        [
            (timeseries("Balloon and guest memory", [
                (f"libvirt_domain_info_maximum_memory_bytes{{{DOM}}}", "maximum"),
                (f"libvirt_domain_info_memory_usage_bytes{{{DOM}}}", "current"),
                (f"libvirt_domain_memory_stats_current_balloon_bytes{{{DOM}}}", "balloon"),
                (f"libvirt_domain_memory_stats_available_bytes{{{DOM}}}", "guest available"),
                (f"libvirt_domain_memory_stats_usable_bytes{{{DOM}}}", "guest usable"),
                (f"libvirt_domain_memory_stats_unused_bytes{{{DOM}}}", "guest unused"),
                (f"libvirt_domain_memory_stats_disk_caches_bytes{{{DOM}}}", "guest disk caches"),
                (f"libvirt_domain_memory_stats_rss_bytes{{{DOM}}}", "host RSS")], "bytes",
                "Balloon size and the guest's own view of its memory (needs the balloon driver "
                "and a stats period in the guest)."), 16, 8),
            (timeseries("Swap", [
                (f"rate(libvirt_domain_memory_stats_swap_in_bytes{{{DOM}}}[{RI}])",
                 "swap in"),
                (f"rate(libvirt_domain_memory_stats_swap_out_bytes{{{DOM}}}[{RI}])",
                 "swap out")], "Bps",
                "Guest swap traffic (the exported values are bytes swapped since boot)."),
             8, 8),
        ],
        row("Disks"),
        [
            (timeseries("Disk IOPS", [
                (f"rate(libvirt_domain_block_stats_read_requests_total{{{DOM}}}[{RI}])",
                 "{{target_device}} read"),
                (f"rate(libvirt_domain_block_stats_write_requests_total{{{DOM}}}[{RI}])",
                 "{{target_device}} write")], "ops"), 8, 8),
            (timeseries("Disk throughput", [
                (f"rate(libvirt_domain_block_stats_read_bytes_total{{{DOM}}}[{RI}])",
                 "{{target_device}} read"),
                (f"rate(libvirt_domain_block_stats_write_bytes_total{{{DOM}}}[{RI}])",
                 "{{target_device}} write")], "Bps"), 8, 8),
            (timeseries("Disk latency", [
                (f"rate(libvirt_domain_block_stats_read_time_seconds_total{{{DOM}}}[{RI}])"
                 f" / rate(libvirt_domain_block_stats_read_requests_total{{{DOM}}}[{RI}])",
                 "{{target_device}} read"),
                (f"rate(libvirt_domain_block_stats_write_time_seconds_total{{{DOM}}}[{RI}])"
                 f" / rate(libvirt_domain_block_stats_write_requests_total{{{DOM}}}[{RI}])",
                 "{{target_device}} write")], "s", "Average time per request."), 8, 8),
        ],
        row("Network"),
        [
            (timeseries("Network throughput", [
                (f"rate(libvirt_domain_interface_stats_receive_bytes_total{{{DOM}}}[{RI}])",
                 "{{target_device}} rx"),
                (f"rate(libvirt_domain_interface_stats_transmit_bytes_total{{{DOM}}}[{RI}])",
                 "{{target_device}} tx")], "Bps"), 8, 8),
            (timeseries("Network packets", [
                (f"rate(libvirt_domain_interface_stats_receive_packets_total{{{DOM}}}[{RI}])",
                 "{{target_device}} rx"),
                (f"rate(libvirt_domain_interface_stats_transmit_packets_total{{{DOM}}}[{RI}])",
                 "{{target_device}} tx")], "pps"), 8, 8),
            (timeseries("Network errors and drops", [
                (f"rate(libvirt_domain_interface_stats_receive_errors_total{{{DOM}}}[{RI}])",
                 "{{target_device}} rx errors"),
                (f"rate(libvirt_domain_interface_stats_transmit_errors_total{{{DOM}}}[{RI}])",
                 "{{target_device}} tx errors"),
                (f"rate(libvirt_domain_interface_stats_receive_drops_total{{{DOM}}}[{RI}])",
                 "{{target_device}} rx drops"),
                (f"rate(libvirt_domain_interface_stats_transmit_drops_total{{{DOM}}}[{RI}])",
                 "{{target_device}} tx drops")], "pps"), 8, 8),
        ],
        row("Jobs and migration"),
        [
            (timeseries("Job progress", [
                (f"libvirt_domain_job_info_data_processed_bytes{{{DOM}}}"
                 f" / libvirt_domain_job_info_data_total_bytes{{{DOM}}}", "processed")],
                "percentunit", "Share of the background job's data processed (migration, save, "
                "dump, backup); empty while no job runs.", max_value=1), 8, 8),
            (timeseries("Migration: dirtied vs sent", [
                (f"libvirt_domain_job_info_memory_dirty_rate_pages_per_second{{{DOM}}}"
                 f" * libvirt_domain_job_info_memory_page_size_bytes{{{DOM}}}", "dirtied"),
                (f"libvirt_domain_job_info_memory_transfer_bytes_per_second{{{DOM}}}", "sent")],
                "Bps", "Guest memory dirtied per second against memory sent per second during a "
                "job: dirtied above sent means the migration does not converge."), 8, 8),
            (timeseries("Memory dirty rate", [
                (f"libvirt_domain_dirty_rate_bytes_per_second{{{DOM}}}", "dirty rate")],
                "Bps", "The last dirty-rate calculation (libvirt.stats: dirtyrate; start one with "
                "virsh domdirtyrate-calc)."), 8, 8),
        ],
    ]
    return dashboard(
        "virtscale-guest", "virtscale / Guest detail",
        "One domain: vCPUs and steal, balloon and guest memory, disks, interfaces.",
        [datasource_var(), instance_var(),
         query_var("domain", "Domain",
                   'label_values(libvirt_domain_info_virtual_cpus{instance=~"$instance"}, domain)')],
        layout(items), ["virtscale", "libvirt"])


# ---------------------------------------------------------------- autoscaler

CONDITION_MAPPING = [{"type": "value", "options": {
    "0": {"text": "inactive", "color": "transparent", "index": 0},
    "1": {"text": "pending", "color": "orange", "index": 1},
    "2": {"text": "firing", "color": "red", "index": 2}}}]


def autoscaler_dashboard():
    items = [
        row("Group $group"),
        [
            (stat("Running", [(f'virtscale_group_members{{{GRP},state="running"}}', "running")],
                  "none"), 4, 4),
            (stat("Stopped (warm pool)", [(f'virtscale_group_members{{{GRP},state="stopped"}}',
                                           "stopped")], "none"), 4, 4),
            (stat("Desired", [(f"virtscale_group_desired_members{{{GRP}}}", "desired")], "none"),
             4, 4),
            (stat("Min / max", [(f"virtscale_group_min_members{{{GRP}}}", "min"),
                                (f"virtscale_group_max_members{{{GRP}}}", "max")], "none"), 4, 4),
            (stat("Scale actions (range)", [
                (f"sum by (result) (increase(virtscale_scale_actions_total{{{GRP}}}[$__range]))",
                 "{{result}}")], "none"), 8, 4),
        ],
        [
            (timeseries("Members against desired and bounds", [
                (f"virtscale_group_members{{{GRP}}}", "{{state}}"),
                (f"virtscale_group_desired_members{{{GRP}}}", "desired"),
                (f"virtscale_group_min_members{{{GRP}}}", "min"),
                (f"virtscale_group_max_members{{{GRP}}}", "max")], "none",
                "Running and stopped members, the count the group wants, and its bounds.",
                overrides=[
                    {"matcher": {"id": "byRegexp", "options": "min|max"},
                     "properties": [{"id": "custom.lineStyle",
                                     "value": {"fill": "dash", "dash": [10, 10]}},
                                    {"id": "custom.fillOpacity", "value": 0}]},
                    {"matcher": {"id": "byName", "options": "desired"},
                     "properties": [{"id": "custom.lineWidth", "value": 2},
                                    {"id": "custom.fillOpacity", "value": 0}]}]), 12, 8),
            (timeseries("Metric value against thresholds", [
                (f"virtscale_group_metric_value{{{GRP}}}", "{{metric}}"),
                (f"virtscale_group_threshold{{{GRP}}}",
                 "{{direction}} #{{condition}} threshold ({{metric}})")], "short",
                "What each condition compares (cpu/memory aggregates as ratios, sources as "
                "read) and the thresholds of the group's conditions.",
                min_zero=False,
                overrides=[{"matcher": {"id": "byRegexp", "options": ".*threshold.*"},
                            "properties": [{"id": "custom.lineStyle",
                                            "value": {"fill": "dash", "dash": [10, 10]}},
                                           {"id": "custom.fillOpacity", "value": 0}]},
                           # cpu/memory are ratios; sources are counts: two axes.
                           {"matcher": {"id": "byRegexp", "options": ".*(cpu|memory):.*"},
                            "properties": [{"id": "unit", "value": "percentunit"},
                                           {"id": "custom.axisPlacement", "value": "right"}]}]),
             12, 8),
        ],
        [
            (state_timeline("Condition states", [
                (f"virtscale_group_condition_state{{{GRP}}}",
                 "{{direction}} #{{condition}} {{metric}}")],
                "0 inactive, 1 pending (true, not yet for its `for`), 2 firing.",
                CONDITION_MAPPING,
                [{"color": "transparent", "value": None}, {"color": "orange", "value": 1},
                 {"color": "red", "value": 2}]), 12, 8),
            (timeseries("Scale actions by result", [
                (f"sum by (direction, result) "
                 f"(increase(virtscale_scale_actions_total{{{GRP}}}[{RI}]))",
                 "{{direction}} {{result}}")], "none",
                "Actions (start, create, stop, delete) taken per interval, by direction and "
                "how they ended.", draw="bars", stack=True), 12, 8),
            (timeseries("Since last scale action", [
                (f"time() - virtscale_group_last_scale_timestamp_seconds{{{GRP}}}",
                 "{{direction}}"),
                (f"virtscale_group_action_in_flight{{{GRP}}}", "in flight")], "s",
                "Seconds since the group's last scale action finished, per direction (compare "
                "with the cooldowns); 'in flight' is 1 while actions run."), 12, 8),
            (timeseries("Scale action failures", [
                (f'sum by (direction) '
                 f'(increase(virtscale_scale_actions_total{{{GRP},result="error"}}[{RI}]))',
                 "{{direction}}")], "none",
                "Actions that ended in an error. Empty while nothing fails.", draw="bars"),
             12, 8),
        ],
        row("Sources"),
        [
            (state_timeline("Source health", [
                (f"virtscale_source_up{{{INST}}}", "{{source}}")],
                "1 when the last read of the source succeeded and is fresh.",
                UP_MAPPING, RED_GREEN), 12, 8),
            (timeseries("Source values", [
                (f"virtscale_source_value{{{INST}}}", "{{source}}")], "short",
                "Last value read from each source.", min_zero=False), 12, 8),
            (timeseries("Since last successful read", [
                (f"time() - (virtscale_source_last_success_timestamp_seconds{{{INST}}} > 0)",
                 "{{source}}")], "s",
                "Seconds since each source was last read successfully (sources never read "
                "successfully are left out)."), 12, 8),
            (timeseries("Source errors by reason", [
                (f"sum by (source, reason) "
                 f"(rate(virtscale_source_errors_total{{{INST}}}[{RI}]))",
                 "{{source}}: {{reason}}")], "ops",
                "Failed polls per second. Empty while every source is healthy."), 12, 8),
        ],
    ]
    return dashboard(
        "virtscale-autoscaler", "virtscale / Autoscaler",
        "One scaling group: members against desired and bounds, what its conditions see, "
        "what it did, and the health of the sources it reads.",
        [datasource_var(), instance_var(),
         query_var("group", "Group",
                   'label_values(virtscale_group_desired_members{instance=~"$instance"}, group)')],
        layout(items), ["virtscale", "autoscaling"])


# ---------------------------------------------------------------- fleet

LEADER_MAPPING = [{"type": "value", "options": {
    "0": {"text": "follower", "color": "blue", "index": 0},
    "1": {"text": "LEADER", "color": "green", "index": 1}}}]


def fleet_dashboard():
    items = [
        row("Controllers (leader_election)"),
        [
            (stat("Role", [(f"virtscale_leader_election_is_leader{{{INST}}}", "{{instance}}")],
                  "none",
                  "Each controller: LEADER (holds the etcd lease and acts) or follower (decides "
                  "as a dry run, held_by follower).",
                  [{"color": "blue", "value": None}, {"color": "green", "value": 1}],
                  LEADER_MAPPING, "background"), 8, 4),
            (stat("Leaders", [(f"sum(virtscale_leader_election_is_leader{{{INST}}})",
                               "leaders")], "none",
                  "Controllers that lead now: 1 when healthy, 0 during a failover (or when no "
                  "controller reaches etcd).",
                  [{"color": "red", "value": None}, {"color": "green", "value": 1},
                   {"color": "red", "value": 2}]), 4, 4),
            (stat("etcd unreachable", [
                (f'sum(virtscale_leader_election_role{{{INST},role="unknown"}})', "unknown")],
                "none", "Controllers whose last etcd request failed: they act on nothing.",
                [{"color": "green", "value": None}, {"color": "red", "value": 1}]), 4, 4),
            (table("Controllers", [(f"virtscale_leader_election_info{{{INST}}}", "")], "none",
                   "Each controller's identity (HOSTNAME:PORT-PID) and the leader the election "
                   "key named at its last read."), 8, 4),
        ],
        [
            (state_timeline("Leadership over time", [
                (f"virtscale_leader_election_is_leader{{{INST}}}", "{{instance}}")],
                "Who led when: a handover shows as one controller turning follower and "
                "another LEADER.", LEADER_MAPPING,
                [{"color": "blue", "value": None}, {"color": "green", "value": 1}]), 12, 8),
            (timeseries("Leadership changes", [
                (f"sum by (instance) "
                 f"(increase(virtscale_leader_election_transitions_total{{{INST}}}[{RI}]))",
                 "{{instance}}")], "none",
                "Times each controller became or stopped being the leader per interval.",
                draw="bars"), 12, 8),
        ],
        row("Hosts (hosts:)"),
        [
            (state_timeline("Host health", [
                (f"virtscale_host_up{{{INST}}}", "{{host}} ({{instance}})")],
                "1 while the controller's latest sample of the host reached its libvirt.",
                UP_MAPPING, RED_GREEN), 12, 8),
            (timeseries("Unreachable for", [
                (f"virtscale_host_unreachable_seconds{{{INST}}}", "{{host}} ({{instance}})")],
                "s", "Seconds since each host was last reached (0 while up)."), 12, 8),
            (timeseries("Free memory", [
                (f"virtscale_host_memory_free_bytes{{{INST}}}", "{{host}} free"),
                (f"virtscale_host_memory_bytes{{{INST}}}", "{{host}} total")], "bytes",
                "Free and total memory of each host, as libvirt reports them.",
                overrides=[{"matcher": {"id": "byRegexp", "options": ".* total"},
                            "properties": [{"id": "custom.lineStyle",
                                            "value": {"fill": "dash", "dash": [10, 10]}},
                                           {"id": "custom.fillOpacity", "value": 0}]}]), 12, 8),
            (timeseries("CPU idle", [
                (f"virtscale_host_cpu_idle_ratio{{{INST}}}", "{{host}} ({{instance}})")],
                "percentunit", "Share of each host's CPU time that was idle between its last "
                "two samples.", max_value=1), 12, 8),
            (timeseries("Domains per host", [
                (f"virtscale_host_domains{{{INST}}}", "{{host}} ({{instance}})")], "none",
                "Domains, defined or running, on each host."), 12, 8),
            (timeseries("Host sample age", [
                (f"time() - virtscale_host_last_sample_timestamp_seconds{{{INST}}}",
                 "{{host}} ({{instance}})")], "s",
                "Seconds since each host's latest sample that reached libvirt (grows while it "
                "is down)."), 12, 8),
        ],
        row("Groups"),
        [
            (timeseries("Members by group", [
                (f"max by (group, state) (virtscale_group_members{{{INST}}})",
                 "{{group}} {{state}}"),
                (f"max by (group) (virtscale_group_desired_members{{{INST}}})",
                 "{{group}} desired")], "none",
                "Members of each group and the count it wants, as the controllers see them "
                "(every controller sees the same members; max keeps one)."), 12, 8),
            (timeseries("Decisions held as a follower", [
                (f'sum by (instance, group) (increase(virtscale_group_decisions_total'
                 f'{{{INST},held_by="follower"}}[{RI}]))', "{{group}} ({{instance}})")], "none",
                "Evaluations that would have acted but were a dry run because another "
                "controller leads.", draw="bars"), 12, 8),
        ],
    ]
    return dashboard(
        "virtscale-fleet", "virtscale / Fleet",
        "Several controllers and the hosts they reach: who leads, each host's health, free "
        "memory and CPU, and the groups' members.",
        [datasource_var(),
         query_var("instance", "Instance", "label_values(virtscale_build_info, instance)",
                   multi=True)],
        layout(items), ["virtscale", "fleet"])


DASHBOARDS = {
    "virtscale-host.json": host_dashboard,
    "virtscale-guest.json": guest_dashboard,
    "virtscale-autoscaler.json": autoscaler_dashboard,
    "virtscale-fleet.json": fleet_dashboard,
}


def render(build):
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = os.path.join(HERE, name)
        text = render(build)
        if check:
            try:
                with open(path) as f:
                    if f.read() != text:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
            print("wrote", path)
    if stale:
        print("out of date (run python3 dashboards/generate.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
