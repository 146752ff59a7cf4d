# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet migrations: what each stack needs (from what its containers take on their source), and the
fleet report (every stack's outcome, source, target and downtime, the total time, a timeline).

The placement itself is placement.py; the per-stack migrations are the migrate_stack role's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "ARCHIVE_OVERHEAD", "OUTCOMES", "COLOURS", "SelectError", "select", "stack_demand", "locate", "plan_inputs",
    "build", "summary", "timeline_svg", "stack_entry", "write",
]

import json
import os
import time

from xml.sax.saxutils import escape
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

# What an archive holds beyond its container's memory and volumes (CRIU's other images, changed files).
ARCHIVE_OVERHEAD = 64 * 1024 * 1024
OUTCOMES = ("migrated", "rolled_back", "failed", "unplaced", "skipped")
COLOURS = {"migrated": "#43a047", "rolled_back": "#fb8c00", "failed": "#e53935", "unplaced": "#9e9e9e",
           "skipped": "#bdbdbd"}


class SelectError(StackliftError):
    """The query that selects the fleet's stacks is wrong."""


def select(stacks, extras, query, sources=None):
    """The names of the STACKS a JMESPath QUERY selects. It runs on the list of the stacks, each its
    description with its fleet settings (C(labels), C(requires), C(spread), C(cpus)) and C(runs_on) (the
    host it runs on, from SOURCES), and may return stacks or their names:
    ``[?labels.team=='web']``, ``[?name=='shop' || name=='sessions'].name``, ``[?runs_on=='node1']``."""
    import jmespath  # the caller checks it is there (missing_required_lib)
    rows = []
    for stack, extra in zip(stacks, extras or [{}] * len(stacks)):
        row = dict(stack)
        for key in ("labels", "requires", "spread", "cpus"):
            row.setdefault(key, (extra or {}).get(key))
        row["runs_on"] = (sources or {}).get(stack["name"])
        rows.append(row)
    try:
        found = jmespath.search(query, rows)
    except jmespath.exceptions.JMESPathError as e:
        raise SelectError("the stacks' selection %r is no JMESPath expression: %s" % (query, e))
    if found is None:
        return []
    if not isinstance(found, list):
        found = [found]
    names = []
    for item in found:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or name not in [s["name"] for s in stacks]:
            raise SelectError("the stacks' selection %r gave %r, neither a stack nor a stack's name" % (query, item))
        names.append(name)
    return sorted(set(names))


def stack_demand(stack, usage):
    """What STACK (a description with services) needs on a target, from USAGE ({container: {memory_bytes,
    volume_bytes}} as host_capacity measured them on its source), for placement.place."""
    containers = [s.get("container") or s["name"] for s in stack.get("services") or []]
    measured = [usage.get(c) or {} for c in containers]
    memory = sum(int(m.get("memory_bytes") or 0) for m in measured)
    volumes = sum(int(m.get("volume_bytes") or 0) for m in measured)
    return {"name": stack["name"], "source": stack.get("source"), "memory_bytes": memory,
            "archive_bytes": memory + volumes + ARCHIVE_OVERHEAD * len(containers),
            "requires": list(stack.get("requires") or []), "spread": list(stack.get("spread") or []),
            "missing": sorted(c for c in containers if c not in usage)}


def locate(stacks, measured):
    """{stack: the host it runs on} from host_capacity's results on each host ({host: result}, whose
    ``stacks_here`` names the stacks with all their containers running there): its declared source when
    it runs there, else the first such host by name, else None."""
    out = {}
    for stack in stacks:
        hosts = [h for h in sorted(measured) if stack["name"] in (measured[h].get("stacks_here") or [])]
        out[stack["name"]] = stack.get("source") if stack.get("source") in hosts else (hosts[0] if hosts else None)
    return out


def plan_inputs(stacks, extras, measured, targets, target_labels=None, max_stacks=None, reserved_memory=None,
                from_host=None, memory_budget=None, query=None):
    """(demands, hosts, pinned, sources, excluded, nowhere) for placement.place, from what host_capacity
    measured on every host involved. FROM_HOST: only the stacks running there move (a drain); QUERY
    (a JMESPath expression, see select): only the stacks it selects move. The others are EXCLUDED.

    A target's room is its free memory less RESERVED_MEMORY, and, when MEMORY_BUDGET gives it one, no
    more than its budget less what the stacks it runs already use."""
    sources = locate(stacks, measured)
    selected = select(stacks, extras, query, sources) if query else None
    by_name = {s["name"]: s for s in stacks}
    extra_of = {s["name"]: e or {} for s, e in zip(stacks, extras or [{}] * len(stacks))}
    demands, pinned, excluded, nowhere = [], {}, [], []
    for stack in stacks:
        src = sources[stack["name"]]
        if selected is not None and stack["name"] not in selected:
            excluded.append(stack["name"])
            continue
        if src is None:
            nowhere.append({"stack": stack["name"], "source": stack.get("source"),
                            "why": ["its containers do not all run on any of %s" % ", ".join(sorted(measured))]})
            continue
        if from_host and src != from_host:
            excluded.append(stack["name"])
            continue
        desc = dict(stack, source=src, requires=extra_of[stack["name"]].get("requires") or [],
                    spread=extra_of[stack["name"]].get("spread") or [])
        demand = stack_demand(desc, (measured[src].get("containers") or {}))
        demand["cpus"] = extra_of[stack["name"]].get("cpus")
        demands.append(demand)
        if stack.get("target"):
            pinned[stack["name"]] = stack["target"]
    hosts = []
    for name in targets:
        cap = measured.get(name) or {}
        free = int(cap.get("free_memory_bytes") or 0) - int((reserved_memory or {}).get(name) or 0)
        limit = (max_stacks or {}).get(name)
        there = [{"name": n, "spread": extra_of.get(n, {}).get("spread") or []}
                 for n in cap.get("stacks_here") or [] if n not in [d["name"] for d in demands]]
        budget = (memory_budget or {}).get(name)
        if budget is not None:
            used = sum(stack_demand(by_name[t["name"]], cap.get("containers") or {})["memory_bytes"]
                       for t in there if t["name"] in by_name)
            free = min(free, int(budget) - used)
        hosts.append({"name": name, "free_memory_bytes": max(0, free),
                      "free_archive_bytes": cap.get("free_archive_bytes"), "cpus": cap.get("cpus"),
                      "labels": (target_labels or {}).get(name) or [],
                      "max_stacks": int(limit) if limit is not None else None, "stacks": there})
    return demands, hosts, pinned, sources, excluded, nowhere


def build(stacks, started, finished):
    """The fleet report from each stack's outcome.

    stacks: [{stack, source, target, outcome, downtime_s?, error?, report?: path of its own report,
    window?: [first fence, commit or rollback] epoch seconds}].
    """
    rows = sorted(stacks, key=lambda s: s["stack"])
    counts = {o: sum(1 for s in rows if s["outcome"] == o) for o in OUTCOMES}
    downtimes = [s["downtime_s"] for s in rows if s["outcome"] == "migrated" and s.get("downtime_s") is not None]
    return {
        "stacks": rows, "counts": counts, "ok": counts["migrated"] + counts["skipped"] == len(rows),
        "started": started, "finished": finished, "total_s": round(finished - started, 3),
        "max_downtime_s": max(downtimes) if downtimes else None,
    }


def merge(parts):
    """One fleet report from the reports of jobs that each moved part of a fleet (the slices of a drain
    run at once): their rows together, from the first start to the last end. A stack in two parts (moved
    twice, or by two jobs) is an error, raised naming every such stack."""
    if not parts:
        raise StackliftError("no part of a fleet run to merge (no stacklift_fleet_part_* given)")
    rows, seen = [], {}
    for i, part in enumerate(parts):
        for row in part["stacks"]:
            seen.setdefault(row["stack"], []).append(i + 1)
            rows.append(row)
    twice = ["%s (parts %s)" % (name, ", ".join(map(str, where))) for name, where in sorted(seen.items()) if len(where) > 1]
    if twice:
        raise StackliftError("a stack is in more than one part of the fleet run: %s" % "; ".join(twice))
    return build(rows, min(p["started"] for p in parts), max(p["finished"] for p in parts))


def summary(report):
    lines = ["stacklift fleet migration: %d stacks, %s in %.1f s" % (
        len(report["stacks"]), ", ".join("%d %s" % (n, o.replace("_", " ")) for o, n in report["counts"].items() if n),
        report["total_s"])]
    lines.append("")
    lines.append("%-20s %-8s %-8s %-12s %10s %13s  %s" % (
        "stack", "source", "target", "outcome", "downtime", "window wait", "why"))
    for s in report["stacks"]:
        down = "%.3f s" % s["downtime_s"] if s.get("downtime_s") is not None else "-"
        waited = (s.get("window_slot") or {}).get("waited_s")
        lines.append("%-20s %-8s %-8s %-12s %10s %13s  %s" % (
            s["stack"], s.get("source") or "-", s.get("target") or "-", s["outcome"], down,
            "%.1f s" % waited if waited is not None else "-", (s.get("error") or "")[:200]))
    return "\n".join(lines) + "\n"


def timeline_svg(report, width=900, row=28):
    """Each stack a row: its window (first fence to commit, or rollback) on the fleet run's clock, and
    under it the part it was frozen on its source (to the last archive sent)."""
    t0, t1 = report["started"], max(report["finished"], report["started"] + 0.001)
    left, right = 170, 20
    scale = (width - left - right) / (t1 - t0)
    height = 50 + row * len(report["stacks"])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (width, height),
           '<text x="10" y="20" font-weight="bold">%s</text>' % escape(summary(report).splitlines()[0])]
    for i, s in enumerate(report["stacks"]):
        y = 40 + i * row
        out.append('<text x="10" y="%d">%s</text>' % (y + 15, escape("%s %s>%s" % (
            s["stack"], s.get("source") or "?", s.get("target") or "?"))))
        w = s.get("window")
        if w and w[0] is not None and w[1] is not None:
            x = left + (w[0] - t0) * scale
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>'
                       % (x, y, max(1.0, (w[1] - w[0]) * scale), row - 8, COLOURS[s["outcome"]],
                          escape("%s: %s" % (s["stack"], s["outcome"]))))
            f = s.get("freeze")
            if f and f[1] is not None:
                out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="black" fill-opacity="0.3"><title>%s'
                           '</title></rect>' % (x, y + row - 14, max(1.0, (f[1] - f[0]) * scale), 6,
                                                escape("%s: fenced to the last archive sent" % s["stack"])))
        else:
            label = escape(s["outcome"].replace("_", " "))
            out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (left, y + 15, COLOURS[s["outcome"]], label))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def stack_entry(name, source, target, outcome, report_path=None, error=None):
    """One stack's row, read from its own migration report when it wrote one."""
    entry = {"stack": name, "source": source, "target": target, "outcome": outcome, "error": error}
    if report_path and os.path.exists(report_path):
        with open(report_path) as f:
            rep = json.load(f)
        entry.update(report=report_path, downtime_s=rep.get("downtime_s"), outcome=rep.get("outcome") or outcome)
        entry["error"] = entry["error"] or rep.get("error")
        starts, ends, sent = [], [], []
        for svc in (rep.get("services") or {}).values():
            for phase, times in (svc.get("phases") or {}).items():
                if phase != "quiesce" and times.get("start"):
                    starts.append(times["start"])
                if times.get("end"):
                    ends.append(times["end"])
                if phase == "transfer" and times.get("end"):
                    sent.append(times["end"])
        entry["window"] = [min(starts) if starts else None, max(ends) if ends else None]
        # the stack frozen on its source: the first fence to the last archive in
        entry["freeze"] = [entry["window"][0], max(sent) if sent else None]
        entry["window_slot"] = rep.get("window_slot")
    return entry


def write(report, report_dir, stamp=None):
    """fleet-STAMP.json, .txt and .svg in REPORT_DIR; returns the JSON's path."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S", time.gmtime(report["started"]))
    if not os.path.isdir(report_dir):
        os.makedirs(report_dir, 0o755)
    base = os.path.join(report_dir, "fleet-%s" % stamp)
    with open(base + ".json", "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    with open(base + ".txt", "w") as f:
        f.write(summary(report))
    with open(base + ".svg", "w") as f:
        f.write(timeline_svg(report))
    return base + ".json"
