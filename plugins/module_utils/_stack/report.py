# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration report: what each service went through, when, and how long the stack was down.

The roles hand over the quiesce results and the hosts' records of the window (what
window_source and window_target returned); this turns them into per-service phase times (epoch seconds, as the hosts' clocks give them),
the downtime (first fence to last service ready on the target), when each service's memory was resident
(at its restore, or at the end of its lazy fill), a short text summary and an SVG timeline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "PHASES", "COLOURS", "STEP_PHASES", "clock_offsets", "window_events", "window_slot", "events", "build",
    "report_base", "summary", "timeline_svg",
]

import os
import re

from xml.sax.saxutils import escape

PHASES = ["precopy", "files", "quiesce", "fence", "checkpoint", "transfer", "restore", "ready", "commit", "fill", "rollback"]
COLOURS = {"precopy": "#ffcc80", "files": "#fff59d", "quiesce": "#9e9e9e", "fence": "#e53935", "checkpoint": "#fb8c00", "transfer": "#1e88e5",
           "restore": "#43a047", "ready": "#8e24aa", "commit": "#212121", "fill": "#00acc1", "rollback": "#6d4c41"}
# The hosts' marker records (window_source, window_target) -> the phase each closes.
STEP_PHASES = {"pre_copied": "precopy", "files_staged": "files", "files_not_staged": "files", "quiesced": "quiesce",
               "fenced": "fence", "checkpointed": "checkpoint", "sent": "transfer", "restored": "restore",
               "ready": "ready", "committed": "commit", "resident": "fill", "removed": "rollback", "rolled_back": "rollback",
               "unfenced": "rollback"}


def clock_offsets(results):
    """{service: (its target's clock minus its source's, error)} from the sources' "sent" records."""
    out = {}
    for r in results or []:
        for rec in (r.get("events") or []) if isinstance(r, dict) else []:
            if rec.get("step") == "sent" and rec.get("clock_offset") is not None:
                out[rec["service"]] = (rec["clock_offset"], rec.get("clock_error") or 0.0)
    return out


def window_events(results, offsets=None):
    """(service, phase, start, end, extra) from the window calls' results (their ``events``).

    Times recorded on a target (``side: target``) are put on its source's clock with OFFSETS
    (clock_offsets), so a downtime never subtracts one host's clock from another's.
    """
    out = []
    for r in results or []:
        if not isinstance(r, dict):
            continue
        for rec in r.get("events") or []:
            phase = STEP_PHASES.get(rec.get("step"))
            if not phase or not rec.get("service"):
                continue
            extra = {}
            if phase == "checkpoint":
                extra = {"archive_bytes": rec.get("size"), "frozen_at": rec.get("frozen")}
                if rec.get("compression"):
                    extra["compression"] = rec["compression"]
                if rec.get("files"):  # staged before the fence: what changed since, sent inside the pause
                    extra["files"] = {k: rec["files"][k] for k in ("bytes", "synced_bytes", "synced_s")}
            elif phase == "transfer" and rec.get("bytes") is not None:
                extra = {"bytes": rec["bytes"]}
            elif phase == "precopy":  # its rounds' bytes written and seconds, why they stopped, or what failed
                extra = {k: rec.get(k) for k in ("rounds", "stopped", "error")}
            elif phase == "files":  # its changed files staged on the target before the fence, or why not
                extra = {k: rec[k] for k in ("bytes", "entries", "trees", "detail") if k in rec}
            elif phase == "restore" and rec.get("memory"):
                extra = {k: rec[k] for k in ("memory", "pages_from") if rec.get(k)}
            elif phase == "fill" and rec.get("finished"):  # its daemon died: the keeper finished the fill
                extra = {"finished_by_keeper": rec["finished"]}
            if rec.get("timings"):  # the engine's, CRIU's and stacklift's own steps, in seconds
                extra["steps_s"] = {k: round(v / 1e6, 3) for k, v in sorted(rec["timings"].items())
                                    if isinstance(v, (int, float))}
            shift = (offsets or {}).get(rec["service"], (0.0, 0.0))[0] if r.get("side") == "target" else 0.0
            out.append((rec["service"], phase, (rec.get("started") or rec["t"]) - shift, rec["t"] - shift, extra))
    return out


def window_slot(results):
    """A fleet's window slot on the source (stacklift_fleet_windows): how long the stack waited for
    it, and when and on whose word it gave it back (its targets serving, or the controller's
    commit or abort note); None when it took none."""
    for r in results or []:
        if not isinstance(r, dict) or r.get("side") != "source":
            continue
        steps = {rec.get("step"): rec for rec in r.get("events") or []}
        if "window" in steps:
            back = steps.get("window_given_back") or {}
            return {"slot": steps["window"].get("slot"), "waited_s": steps["window"].get("waited_s"),
                    "given_back": round(back["t"], 3) if back.get("t") else None,
                    "given_back_on": back.get("seen_on") or ("%s note" % back["note"] if back.get("note") else None)}
    return None


def _service_of(result, containers):
    item = result.get("item") or {}
    if isinstance(item, dict) and item.get("name"):
        return item["name"]
    return containers.get(item) if isinstance(item, str) else None


def events(phase, results, plan):
    """(service, start, end, extra) for one phase's registered results (each with started_at, finished_at)."""
    containers = {s["container"]: s["name"] for s in plan["services"]}
    out = []
    for r in results or []:
        if not isinstance(r, dict) or r.get("skipped") or not r.get("started_at"):
            continue
        out.append((_service_of(r, containers), r["started_at"], r.get("finished_at"), {}))
    return out


def build(plan, phases, source, target, outcome, error=None):
    services = {s["name"]: {"tier": s["tier"], "container": s["container"], "phases": {}} for s in plan["services"]}
    found = [(name, phase, start, end, extra) for phase in PHASES
             for name, start, end, extra in events(phase, phases.get(phase), plan)]
    offsets = clock_offsets(phases.get("window"))
    found += window_events(phases.get("window"), offsets)
    for name, phase, start, end, extra in found:
        if name not in services or start is None:
            continue
        old = services[name]["phases"].get(phase)
        if old:  # a phase recorded in steps (a rollback's removal, then its restore): one bar over all
            start, end = min(start, old["start"]), max(end or 0, old["end"] or 0) or None
        entry = {"start": round(start, 3), "end": round(end, 3) if end else None,
                 "seconds": round(end - start, 3) if end else None}
        entry.update(extra)
        services[name]["phases"][phase] = entry
        if "archive_bytes" in extra:
            services[name]["archive_bytes"] = extra["archive_bytes"]
    fence_starts = [s["phases"]["fence"]["start"] for s in services.values() if "fence" in s["phases"]]
    # Clients wait from the first fence until the commit lifts the target's fence (or, in a
    # rollback, until the source's fences are lifted); without those records, until ready.
    last = "commit" if outcome == "migrated" else "rollback"
    ends = [s["phases"][last]["end"] for s in services.values() if last in s["phases"]]
    if not ends and outcome == "migrated":
        ends = [s["phases"]["ready"]["end"] for s in services.values() if "ready" in s["phases"]]
    downtime = None
    if fence_starts and ends:
        downtime = round(max(ends) - min(fence_starts), 3)
        for s in services.values():
            _resident(s, min(fence_starts))
    all_times = [v for s in services.values() for ph in s["phases"].values() for v in (ph["start"], ph["end"]) if v]
    return {
        "stack": plan["name"], "source": source, "target": target, "outcome": outcome, "error": error,
        # every time is on the source's clock; a target's were shifted by its measured offset
        "clock": {"reference": "source", "target_offsets_s": {k: v[0] for k, v in offsets.items()},
                  "max_error_s": max([v[1] for v in offsets.values()] or [0.0])},
        "downtime_s": downtime, "started": min(all_times) if all_times else None,
        "finished": max(all_times) if all_times else None,
        "checkpoint_order": plan["checkpoint_order"], "restore_order": plan["restore_order"],
        "window_slot": window_slot(phases.get("window")),
        "services": services,
    }


def _resident(service, first_fence):
    """SERVICE's memory mode, and when its memory was all there: at the end of its lazy fill, or of its restore."""
    phases = service["phases"]
    service["memory"] = (phases.get("restore") or {}).get("memory") or "eager"
    service["pages_from"] = (phases.get("restore") or {}).get("pages_from")  # lazy: "source" or "images"
    end = (phases.get("fill") or phases.get("restore") or {}).get("end")
    service["resident_at"] = end
    service["resident_s"] = round(end - first_fence, 3) if end else None


def report_base(report_dir, stack, stamp):
    """The reports' path without suffix: inside REPORT_DIR whatever the stack is called."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(stack)).lstrip(".") or "stack"
    return os.path.join(report_dir, "%s-%s" % (name, stamp))


def summary(report):
    lines = ["stacklift migration of stack %r: %s -> %s, %s"
             % (report["stack"], report["source"], report["target"], report["outcome"])]
    if report["downtime_s"] is not None:
        lines.append("downtime (first fence to the %s): %.3f s"
                     % ("commit" if report["outcome"] == "migrated" else "source serving again", report["downtime_s"]))
    for name, s in sorted(report["services"].items()):
        pre = s["phases"].get("precopy")
        if pre:
            lines.append("%s: pre-copied in %d round(s), %s MB, the last %s MB%s" % (
                name, len(pre.get("rounds") or []), round(sum(r["bytes"] for r in pre.get("rounds") or []) / 1e6, 1),
                round(((pre.get("rounds") or [{}])[-1].get("bytes") or 0) / 1e6, 1),
                " (%s)" % pre["error"] if pre.get("error") else ""))
        staged, files = s["phases"].get("files"), (s["phases"].get("checkpoint") or {}).get("files")
        if staged:
            synced = ", %.1f MB of them changed and sent in the pause (%.3f s)" % (
                files["synced_bytes"] / 1e6, files["synced_s"]) if files else ""
            lines.append("%s: files %s before the fence%s" % (
                name, "not staged (%s)" % staged["detail"] if staged.get("detail") else
                "staged, %.1f MB" % ((staged.get("bytes") or 0) / 1e6), synced))
        if s.get("memory") == "lazy" and s.get("resident_s") is not None:
            lines.append("%s: restored lazily (pages from the %s), its memory all there %.3f s after the first fence"
                         % (name, s.get("pages_from") or "images", s["resident_s"]))
            kept = (s["phases"].get("fill") or {}).get("finished_by_keeper")
            if kept:
                lines.append("%s: its lazy-pages daemon died (%s); its keeper finished the fill: %d pages in %.3f s"
                             % (name, kept.get("daemon"), kept.get("pages") or 0, kept.get("seconds") or 0))
    if report.get("error"):
        lines.append("error: %s" % report["error"])
    t0 = report["started"] or 0
    lines.append("")
    lines.append("%-10s %-5s " % ("service", "tier") + " ".join("%-14s" % p for p in PHASES) + " archive")
    for name, s in sorted(report["services"].items(), key=lambda kv: (kv[1]["tier"], kv[0])):
        cells = []
        for p in PHASES:
            ph = s["phases"].get(p)
            cells.append("%-14s" % ("%.2f+%.3fs" % (ph["start"] - t0, ph["seconds"] or 0) if ph else "-"))
        size = s.get("archive_bytes")
        lines.append("%-10s %-5d " % (name, s["tier"]) + " ".join(cells) + (" %.1f MB" % (size / 1e6) if size else ""))
    lines.append("")
    lines.append("(times: seconds since the first event + duration)")
    return "\n".join(lines) + "\n"


def timeline_svg(report, width=900, row=26):
    """One row per service, one bar per phase, on a common time axis."""
    t0, t1 = report["started"], report["finished"]
    names = sorted(report["services"], key=lambda n: (report["services"][n]["tier"], n))
    height = row * (len(names) + 2) + 30
    if not t0 or not t1 or t1 <= t0:
        t0, t1 = 0, 1
    left = 90
    scale = (width - left - 20) / (t1 - t0)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">'
           % (width, height),
           '<text x="4" y="16">%s: %s -&gt; %s, %s%s</text>' % (
               escape(str(report["stack"])), escape(str(report["source"])), escape(str(report["target"])),
               report["outcome"],
               ", downtime %.2f s" % report["downtime_s"] if report["downtime_s"] is not None else "")]
    for i, name in enumerate(names):
        y = 30 + i * row
        out.append('<text x="4" y="%d">%s</text>' % (y + 15, escape(name)))
        for phase in PHASES:
            ph = report["services"][name]["phases"].get(phase)
            if not ph or not ph["end"]:
                continue
            x = left + (ph["start"] - t0) * scale
            w = max(2.0, (ph["end"] - ph["start"]) * scale)
            out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s %s %.3f s</title></rect>'
                       % (x, y + 3, w, row - 8, COLOURS[phase], escape(name), phase, ph["seconds"] or 0))
    y = 30 + len(names) * row + 10
    for i, phase in enumerate(PHASES):
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>'
                   % (left + i * 95, y, COLOURS[phase], left + i * 95 + 16, y + 11, phase))
    out.append('<text x="%d" y="%d">%.2f s</text>' % (width - 60, y + 11, t1 - t0))
    out.append("</svg>")
    return "\n".join(out) + "\n"
