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

__all__ = [
    "NAME", "UNSUPPORTED", "NETWORK_OPTIONS", "SERVICE_OPTIONS", "STACK_OPTIONS", "SERVICE_KEYS", "SERVICE_SPEC", "TOP_SPEC",
    "COMPOSE_SERVICE_LABELS", "COMPOSE_DEPENDS_LABELS", "StackError", "validate", "normalize", "SETTING_MINIMUMS",
    "setting_problems", "SECRET_KEYS", "secrets_of", "without_secrets", "with_secrets", "find_cycle", "tiers",
    "plan", "as_planned", "with_depends_on", "compose_depends_on", "compose_service", "PLAN_SPEC", "checked", "invalid",
]

import copy
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import container_name_problem
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import TCP_MODES
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import MEMORY_DEFAULT, MEMORY_MODES
from ansible_collections.stacklift.migrate.plugins.module_utils._services.probes import (
    PROBE_MINIMUMS, PROBE_SPEC, below_minimums)
from ansible_collections.stacklift.migrate.plugins.module_utils._services.quiesce import (
    QUIESCE_MINIMUMS, QUIESCE_SPEC)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

# Stack and service names become file, journal and nftables names: a safe, short identifier.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

UNSUPPORTED = re.compile(r"^(.*)\. Supported parameters include: (.*)\.$")

NETWORK_OPTIONS = dict(name=dict(type="str", required=True), subnet=dict(type="str"))
SERVICE_OPTIONS = dict(
    name=dict(type="str", required=True),
    container=dict(type="str"),
    source=dict(type="str"),
    target=dict(type="str"),
    depends_on=dict(type="list", elements="str"),
    probe=dict(type="dict", options=PROBE_SPEC.options),
    quiesce=dict(type="raw"),
    tcp=dict(type="str", choices=list(TCP_MODES)),
    memory=dict(type="str", choices=list(MEMORY_MODES)),
)
# The stack description, as stack_plan, the stack modules and the roles' argument specs take it.
STACK_OPTIONS = dict(
    name=dict(type="str", required=True),
    source=dict(type="str"),
    target=dict(type="str"),
    networks=dict(type="list", elements="dict", options=NETWORK_OPTIONS),
    services=dict(type="list", elements="dict", required=True, options=SERVICE_OPTIONS),
    memory=dict(type="str", choices=list(MEMORY_MODES)),
)
SERVICE_KEYS = set(SERVICE_OPTIONS)
SERVICE_SPEC = ArgumentSpec(SERVICE_OPTIONS)
# The stack's own keys checked first; its services one by one after.
TOP_SPEC = ArgumentSpec(STACK_OPTIONS).merge(services=dict(type="raw"), name=dict(type="raw"))

# docker compose v2 records a service's dependencies on its containers; podman-compose does too.
COMPOSE_SERVICE_LABELS = ("com.docker.compose.service", "io.podman.compose.service")
COMPOSE_DEPENDS_LABELS = ("com.docker.compose.depends_on", "io.podman.compose.depends_on")


class StackError(StackliftError):
    """The stack description is wrong; .problems lists every mistake found."""

    def __init__(self, problems):
        super().__init__("; ".join(problems), problems=problems)
        self.problems = problems


def validate(spec, value, where, problems):
    """VALUE checked against SPEC (an ArgumentSpec); the typed value, or None with PROBLEMS extended.

    Messages name the setting (WHERE) the way a user wrote it, e.g. "service 'db' probe: ...".
    """
    if not isinstance(value, dict):
        problems.append("%s must be a mapping, not %r" % (where, value))
        return None
    result = ArgumentSpecValidator(spec.options, required_if=spec.rules.get("required_if")).validate(dict(value))
    found = [UNSUPPORTED.sub(r"unknown keys \1 (allowed: \2)", m).replace(" found in ", " in ")
             for m in result.error_messages if not m.startswith("dictionary requested")]
    problems.extend("%s: %s" % (where, m) for m in found)
    return None if found else result.validated_parameters


def _unset(params):
    return {k: v for k, v in params.items() if v is not None}


def _service(svc, index, stack, problems):
    """One service checked and filled in, or None."""
    if not isinstance(svc, dict) or not svc.get("name"):
        problems.append("service #%d has no name" % (index + 1))
        return None
    sname = svc["name"]
    where = "service %r" % (sname,)
    before = len(problems)
    flat = dict(svc, probe=None, quiesce=None)
    flat = {k: v for k, v in flat.items() if v is not None or k in SERVICE_KEYS}
    checked = validate(SERVICE_SPEC, flat, where, problems) or {}
    if not NAME.match(str(sname)):
        problems.append("%s: a service name is letters, digits, '_', '.' and '-' (at most 63)" % where)
    container = checked.get("container") or sname
    name_problem = container_name_problem(container)
    if name_problem:
        problems.append("%s: %s" % (where, name_problem))
    probe = svc.get("probe")
    probe = validate(PROBE_SPEC, {"type": "tcp"} if probe is None else probe, where + " probe", problems)
    if probe is not None:
        probe = _unset(probe)
        probe.setdefault("type", "tcp")
        problems.extend("%s probe: %s" % (where, m) for m in below_minimums(probe, PROBE_MINIMUMS))
        if probe["type"] == "command" and not probe.get("command"):
            problems.append("%s probe: type command needs command (the argv run in the container)" % where)
    quiesce = svc.get("quiesce") or {"method": "none"}
    if isinstance(quiesce, str):
        quiesce = {"method": quiesce}
    quiesce = validate(QUIESCE_SPEC, quiesce, where + " quiesce", problems)
    if quiesce is not None:
        quiesce = _unset(quiesce)
        quiesce.setdefault("method", "none")
        problems.extend("%s quiesce: %s" % (where, m) for m in below_minimums(quiesce, QUIESCE_MINIMUMS))
    source = checked.get("source") or stack.get("source")
    target = checked.get("target") or stack.get("target")
    if not source or not target:
        problems.append("%s has no %s host (set it on the stack or the service)"
                        % (where, "source" if not source else "target"))
    elif source == target:
        problems.append("%s would move from %s to itself" % (where, source))
    if len(problems) > before:
        return None
    return {"name": sname, "container": container, "depends_on": checked.get("depends_on") or [],
            "probe": probe, "quiesce": quiesce, "tcp": checked.get("tcp") or "established",
            "memory": checked.get("memory") or stack.get("memory") or MEMORY_DEFAULT, "source": source, "target": target}


def normalize(stack):
    """Check a stack description and fill in its defaults. Raises StackError with every problem."""
    problems = []
    if not isinstance(stack, dict):
        raise StackError(["the stack must be a mapping with name, source, target and services, not %r"
                          % (type(stack).__name__,)])
    name = stack.get("name")
    services = stack.get("services")
    top = validate(TOP_SPEC, stack, "the stack", problems) or {}
    if not name:
        problems.append("the stack has no name")
    elif not isinstance(name, str) or not NAME.match(name):
        problems.append("the stack's name %r: letters, digits, '_', '.' and '-' (at most 63)" % (name,))
    if not isinstance(services, list) or not services:
        raise StackError(problems + ["stack %r has no services (a list of mappings)" % (name,)])
    out = []
    seen = set()
    for i, svc in enumerate(services):
        sname = svc.get("name") if isinstance(svc, dict) else None
        if sname and sname in seen:
            problems.append("duplicate service name %r" % sname)
            continue
        seen.add(sname)
        checked = _service(svc, i, stack, problems)
        if checked:
            out.append(checked)
    for svc in services:
        deps = svc.get("depends_on") if isinstance(svc, dict) else None
        for d in [deps] if isinstance(deps, (str, int)) else deps if isinstance(deps, list) else []:
            if str(d) not in seen:
                problems.append("service %r depends on %r, which is not a service of the stack" % (svc["name"], d))
    containers = {}
    for s in out:  # one container name per host, on the sources as on the targets
        for side in ("source", "target"):
            key = (side, s[side], s["container"])
            if key in containers:
                problems.append("services %r and %r both name container %r on %s %s"
                                % (containers[key], s["name"], s["container"], side, s[side]))
            containers[key] = s["name"]
    if not problems:
        cycle = find_cycle(out)
        if cycle:
            problems.append("depends_on has a cycle: %s" % " -> ".join(cycle))
    if problems:
        raise StackError(problems)
    return {"name": name, "source": stack.get("source"), "target": stack.get("target"),
            "networks": [_unset(n) for n in top.get("networks") or []], "services": out}


# The roles' numeric settings and the least each may be.
SETTING_MINIMUMS = dict(stacklift_quiesce_timeout=0.1, stacklift_probe_timeout=0.1, stacklift_probe_stable_for=0,
                        stacklift_window_timeout=1)


def setting_problems(settings):
    """Problems with the roles' numeric SETTINGS ({name: value}): not numbers, or below their minimum."""
    problems, numbers = [], {}
    for name, value in sorted((settings or {}).items()):
        try:
            numbers[name] = float(value)
        except (TypeError, ValueError):
            problems.append("%s must be a number, not %r" % (name, value))
    return problems + below_minimums(numbers, {k: v for k, v in SETTING_MINIMUMS.items() if k in numbers})


SECRET_KEYS = ("postgres_password", "redis_password")


def secrets_of(stack):
    """The passwords of a stack description: {service: {"probe": {...}, "quiesce": {...}}}.

    A plan never carries them (stack_plan's result is shown and journaled); the modules that
    speak to the services get them in a no_log option, from the description, by this function.
    """
    out = {}
    services = stack.get("services") if isinstance(stack, dict) else None
    for svc in services if isinstance(services, list) else []:
        if not isinstance(svc, dict) or not svc.get("name"):
            continue
        found = {}
        for part in ("probe", "quiesce"):
            spec = svc.get(part)
            keys = [k for k in SECRET_KEYS if isinstance(spec, dict) and spec.get(k) is not None]
            if keys:
                found[part] = {k: str(spec[k]) for k in keys}
        if found:
            out[svc["name"]] = found
    return out


def without_secrets(plan):
    """A copy of PLAN without any password (see secrets_of)."""
    out = dict(plan)
    out["services"] = [dict(s, **{part: {k: v for k, v in (s.get(part) or {}).items() if k not in SECRET_KEYS}
                                  for part in ("probe", "quiesce") if s.get(part) is not None})
                       for s in plan["services"]]
    if "by_name" in plan:
        out["by_name"] = {s["name"]: s for s in out["services"]}
    return out


def with_secrets(service, secrets):
    """A copy of a plan's SERVICE with its passwords from SECRETS (secrets_of) put back."""
    mine = (secrets or {}).get(service["name"]) or {}
    out = dict(service)
    for part, values in mine.items():
        out[part] = dict(out.get(part) or {}, **values)
    return out


def find_cycle(services):
    """A dependency cycle as a list of names (first == last), or None."""
    deps = {s["name"]: s["depends_on"] for s in services}
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
    deps = {s["name"]: s["depends_on"] for s in services}
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
    tier_of = {n: i for i, names in enumerate(order) for n in names}
    for s in norm["services"]:
        s["tier"] = tier_of[s["name"]]
    return {
        "name": norm["name"],
        "services": norm["services"],
        "by_name": {s["name"]: s for s in norm["services"]},
        "networks": norm["networks"],
        "checkpoint_order": order,
        "restore_order": order,
        "quiesce_order": list(reversed(order)),
        "source_hosts": sorted(set(s["source"] for s in norm["services"])),
        "target_hosts": sorted(set(s["target"] for s in norm["services"])),
    }


def as_planned(params):
    """The stack a plan is made of, from stack_plan's PARAMS: its description, the memory mode its services take
    when neither they nor the stack name one, and the dependencies found elsewhere (with_depends_on)."""
    return with_depends_on(dict({"memory": params["memory"]}, **params["stack"]), params["depends_on"])


def with_depends_on(stack, found):
    """A copy of STACK whose services also depend on what FOUND ({service: [names]}) says: dependencies
    read elsewhere (the compose labels on each source host), added after those the description gives."""
    stack = copy.deepcopy(stack)
    for svc in stack.get("services") or []:
        extra = (found or {}).get(svc.get("name") if isinstance(svc, dict) else None) or []
        if extra:
            deps = list(svc.get("depends_on") or [])
            svc["depends_on"] = deps + [d for d in extra if d not in deps]
    return stack


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


PLAN_SPEC = ArgumentSpec(dict(
    stack=dict(type="dict", required=True),
    check_containers=dict(type="bool", default=False),
    discover_depends_on=dict(type="bool", default=False),
    depends_on=dict(type="dict", default={}),
    host=dict(type="str"),
    inventory_hosts=dict(type="list", elements="str"),
    list_running=dict(type="bool", default=False),
    settings=dict(type="dict"),
    memory=dict(type="str", choices=list(MEMORY_MODES), default=MEMORY_DEFAULT),
))


def checked(stack, settings=None, inventory_hosts=None):
    """STACK normalized, its settings and hosts checked (StackError lists every problem)."""
    problems = setting_problems(settings)
    if problems:
        raise StackError(problems)
    norm = normalize(stack)
    if inventory_hosts is not None:
        missing = sorted(set(h for s in norm["services"] for h in (s["source"], s["target"])) - set(inventory_hosts))
        if missing:
            raise StackError(["host %r is not in the inventory" % h for h in missing])
    return norm


def invalid(stack, error):
    return "stack %r is not valid: %s" % (stack.get("name"), "; ".join(error.problems))
