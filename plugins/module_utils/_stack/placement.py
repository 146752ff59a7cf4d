# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where each stack of a fleet migration goes: a deterministic plan by capacity.

A drain moves many stacks off a host to the hosts of a target group. Each stack goes to a host
that has room for it (memory for its services, disk for its archives, CPUs) and that suits it
(labels it requires, no stack of a spread group it belongs to already there, the host's limit
of stacks). Stacks are placed largest first, each on the suitable host left with the most free
memory (ties broken by name), so the same inputs always give the same plan. A stack that fits
nowhere is reported with the reason each host gave, and the others are still placed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["ARCHIVE_MARGIN", "PlacementError", "place"]

from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

ARCHIVE_MARGIN = 1.5  # as host_preflight asks of an archive directory


class PlacementError(StackliftError):
    """Some stacks have no host that can take them."""


def _mb(n):
    return "%.0f MB" % (n / 1e6)


def _host_state(host):
    return {
        "name": host["name"],
        "memory": int(host.get("free_memory_bytes") or 0),
        "disk": int(host.get("free_archive_bytes") or 0),
        "cpus": int(host.get("cpus") or 0),
        "labels": set(host.get("labels") or []),
        "limit": host.get("max_stacks"),
        "stacks": list(host.get("stacks") or []),  # stacks there already: {name, spread}
    }


def _why_not(stack, host):
    """Why STACK cannot go to HOST (a list of reasons; empty when it can)."""
    why = []
    if host["name"] == stack.get("source"):
        why.append("it is the stack's source")
    if stack["memory_bytes"] > host["memory"]:
        why.append("%s of free memory, the stack needs %s" % (_mb(host["memory"]), _mb(stack["memory_bytes"])))
    need_disk = stack.get("archive_bytes", stack["memory_bytes"]) * ARCHIVE_MARGIN
    if need_disk > host["disk"]:
        why.append("%s free for archives, the stack needs %s" % (_mb(host["disk"]), _mb(need_disk)))
    if stack.get("cpus") and stack["cpus"] > host["cpus"]:
        why.append("%d CPUs, the stack needs %d" % (host["cpus"], stack["cpus"]))
    missing = sorted(set(stack.get("requires") or []) - host["labels"])
    if missing:
        why.append("lacks the label%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing)))
    for group in sorted(stack.get("spread") or []):
        there = sorted(s["name"] for s in host["stacks"] if group in (s.get("spread") or []))
        if there:
            why.append("already runs %s of the spread group %s" % (", ".join(there), group))
    if host["limit"] is not None and len(host["stacks"]) >= host["limit"]:
        why.append("runs %d stacks, its limit" % len(host["stacks"]))
    return why


def place(stacks, hosts, pinned=None):
    """The plan: {"placements": [{stack, source, target}], "unplaced": [{stack, source, why}],
    "hosts": {name: what is left}}.

    stacks: [{name, source, memory_bytes, archive_bytes?, cpus?, requires?: [host labels],
    spread?: [groups: no two stacks of one group on a host]}].
    hosts: [{name, free_memory_bytes, free_archive_bytes, cpus, labels?, max_stacks?, stacks?:
    [{name, spread}] already there}].
    pinned: {stack: host} for stacks whose target is given; they are checked, not chosen.
    """
    names = [s.get("name") for s in stacks]
    problems = ["a stack has no name"] if not all(names) else []
    problems += ["stack %r is listed twice" % n for n in sorted(set(n for n in names if n and names.count(n) > 1))]
    problems += ["stack %r has no memory_bytes" % s.get("name") for s in stacks if s.get("memory_bytes") is None]
    state = {h["name"]: _host_state(h) for h in hosts}
    problems += ["stack %r is pinned to %r, which is not a target host" % (s, h)
                 for s, h in sorted((pinned or {}).items()) if h not in state]
    if problems:
        raise PlacementError("; ".join(problems))
    placements, unplaced = [], []
    order = sorted(stacks, key=lambda s: (-int(s["memory_bytes"]), s["name"]))
    for stack in order:
        candidates = [state[pinned[stack["name"]]]] if stack["name"] in (pinned or {}) else \
            sorted(state.values(), key=lambda h: h["name"])
        reasons = {h["name"]: _why_not(stack, h) for h in candidates}
        fit = [h for h in candidates if not reasons[h["name"]]]
        if not fit:
            unplaced.append({"stack": stack["name"], "source": stack.get("source"),
                             "why": ["%s: %s" % (n, "; ".join(r)) for n, r in sorted(reasons.items())]})
            continue
        best = sorted(fit, key=lambda h: (-(h["memory"] - stack["memory_bytes"]), h["name"]))[0]
        best["memory"] -= int(stack["memory_bytes"])
        best["disk"] -= int(stack.get("archive_bytes", stack["memory_bytes"]) * ARCHIVE_MARGIN)
        best["stacks"].append({"name": stack["name"], "spread": stack.get("spread") or []})
        placements.append({"stack": stack["name"], "source": stack.get("source"), "target": best["name"]})
    placements.sort(key=lambda p: p["stack"])
    unplaced.sort(key=lambda p: p["stack"])
    left = {n: {"free_memory_bytes": h["memory"], "free_archive_bytes": h["disk"],
                "stacks": sorted(s["name"] for s in h["stacks"])} for n, h in sorted(state.items())}
    return {"placements": placements, "unplaced": unplaced, "hosts": left}
