# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stack description: validate it and turn it into an ordered plan.

A stack is a name, a source and a target host, and services. Each service names
its container, what it depends on, a readiness probe, a quiesce method and a
TCP policy. The plan puts services in tiers: a service's tier is one more than
the highest tier of its dependencies, so tier 0 holds what depends on nothing
(the database, the cache) and the application comes after. Checkpoint and
restore both go tier by tier, dependencies first; quiesce goes the other way
(stop the application's new work before waiting on the database). Services
within a tier may run in parallel.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.stacklift.migrate.plugins.module_utils.probes import PROBE_TYPES

TCP_POLICIES = ["established", "close"]
QUIESCE_METHODS = ["none", "postgres_idle", "http_drain", "connections_zero"]
SERVICE_KEYS = set(["name", "container", "source", "target", "depends_on", "probe", "quiesce", "tcp"])

# docker compose v2 records a service's dependencies on its containers; podman-compose does too.
COMPOSE_SERVICE_LABELS = ("com.docker.compose.service", "io.podman.compose.service")
COMPOSE_DEPENDS_LABELS = ("com.docker.compose.depends_on", "io.podman.compose.depends_on")


class StackError(Exception):
    """The stack description is wrong; .problems lists every mistake found."""

    def __init__(self, problems):
        super(StackError, self).__init__("; ".join(problems))
        self.problems = problems


def normalize(stack):
    """Check a stack description and fill in its defaults. Raises StackError with every problem."""
    problems = []
    if not isinstance(stack, dict):
        raise StackError(["the stack must be a mapping with name, source, target and services"])
    name = stack.get("name")
    if not name:
        problems.append("the stack has no name")
    services = stack.get("services")
    if not isinstance(services, list) or not services:
        raise StackError(problems + ["stack %r has no services" % name])
    out = []
    seen = set()
    for i, svc in enumerate(services):
        if not isinstance(svc, dict) or not svc.get("name"):
            problems.append("service #%d has no name" % (i + 1))
            continue
        sname = svc["name"]
        if sname in seen:
            problems.append("duplicate service name %r" % sname)
            continue
        seen.add(sname)
        unknown = sorted(set(svc) - SERVICE_KEYS)
        if unknown:
            problems.append("service %r: unknown keys %s (allowed: %s)"
                            % (sname, ", ".join(unknown), ", ".join(sorted(SERVICE_KEYS))))
        deps = svc.get("depends_on") or []
        if isinstance(deps, str):
            deps = [deps]
        probe = dict(svc.get("probe") or {"type": "tcp"})
        if probe.get("type") not in PROBE_TYPES:
            problems.append("service %r: probe type %r is not one of %s"
                            % (sname, probe.get("type"), ", ".join(PROBE_TYPES)))
        quiesce = svc.get("quiesce") or {"method": "none"}
        if isinstance(quiesce, str):
            quiesce = {"method": quiesce}
        quiesce = dict(quiesce)
        quiesce.setdefault("method", "none")
        if quiesce["method"] not in QUIESCE_METHODS:
            problems.append("service %r: quiesce method %r is not one of %s"
                            % (sname, quiesce["method"], ", ".join(QUIESCE_METHODS)))
        tcp = svc.get("tcp", "established")
        if tcp not in TCP_POLICIES:
            problems.append("service %r: tcp must be one of %s, not %r" % (sname, ", ".join(TCP_POLICIES), tcp))
        source = svc.get("source") or stack.get("source")
        target = svc.get("target") or stack.get("target")
        if not source or not target:
            problems.append("service %r has no %s host (set it on the stack or the service)"
                            % (sname, "source" if not source else "target"))
        elif source == target:
            problems.append("service %r would move from %s to itself" % (sname, source))
        out.append({"name": sname, "container": svc.get("container") or sname, "depends_on": list(deps),
                    "probe": probe, "quiesce": quiesce, "tcp": tcp, "source": source, "target": target})
    names = set(s["name"] for s in out)
    for s in out:
        for d in s["depends_on"]:
            if d not in names:
                problems.append("service %r depends on %r, which is not a service of the stack" % (s["name"], d))
    containers = {}
    for s in out:
        key = (s["source"], s["container"])
        if key in containers:
            problems.append("services %r and %r both name container %r on %s"
                            % (containers[key], s["name"], s["container"], s["source"]))
        containers[key] = s["name"]
    if not problems:
        cycle = find_cycle(out)
        if cycle:
            problems.append("depends_on has a cycle: %s" % " -> ".join(cycle))
    if problems:
        raise StackError(problems)
    return {"name": name, "source": stack.get("source"), "target": stack.get("target"),
            "networks": stack.get("networks") or [], "services": out}


def find_cycle(services):
    """A dependency cycle as a list of names (first == last), or None."""
    deps = dict((s["name"], s["depends_on"]) for s in services)
    state = {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for d in deps[node]:
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state:
                found = visit(d, path)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for s in services:
        if s["name"] not in state:
            found = visit(s["name"], [])
            if found:
                return found
    return None


def tiers(services):
    """Services grouped by tier (dependencies first), each tier in declaration order."""
    deps = dict((s["name"], s["depends_on"]) for s in services)
    tier = {}

    def depth(name):
        if name not in tier:
            tier[name] = 1 + max([depth(d) for d in deps[name]] or [-1])
        return tier[name]

    for s in services:
        depth(s["name"])
    out = [[] for _tier in range(max(tier.values()) + 1)]
    for s in services:
        out[tier[s["name"]]].append(s["name"])
    return out


def plan(stack):
    """The migration plan: normalized services and the orders to walk them in."""
    norm = normalize(stack)
    order = tiers(norm["services"])
    tier_of = dict((n, i) for i, names in enumerate(order) for n in names)
    for s in norm["services"]:
        s["tier"] = tier_of[s["name"]]
    return {
        "name": norm["name"],
        "services": norm["services"],
        "by_name": dict((s["name"], s) for s in norm["services"]),
        "networks": norm["networks"],
        "checkpoint_order": order,
        "restore_order": order,
        "quiesce_order": list(reversed(order)),
        "source_hosts": sorted(set(s["source"] for s in norm["services"])),
        "target_hosts": sorted(set(s["target"] for s in norm["services"])),
    }


def compose_depends_on(labels):
    """Dependencies recorded in compose labels: 'db:service_started:false,cache:...' -> ['db', 'cache']."""
    for key in COMPOSE_DEPENDS_LABELS:
        value = (labels or {}).get(key)
        if value:
            return [part.split(":", 1)[0].strip() for part in value.split(",") if part.strip()]
    return []


def compose_service(labels):
    for key in COMPOSE_SERVICE_LABELS:
        if (labels or {}).get(key):
            return labels[key]
    return None
