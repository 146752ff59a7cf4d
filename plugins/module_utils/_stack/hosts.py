# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stacks as inventory hosts: one host per stack (connection local), with its description and what
placement reads in its variables, grouped by the host it runs on and by its labels. The stacks
inventory plugin adds them from a file; the stack_hosts filter from a variable (stacklift_stacks)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["NAME", "group_part", "stack_problems", "FLEET_KEYS", "stack_hosts"]

import re

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def group_part(text):
    """A string as it can be part of a group name (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(text))


def stack_problems(stacks):
    """Every problem of the file's stack list at once (the stacks themselves are validated by stack_plan)."""
    if not isinstance(stacks, list) or not stacks:
        return ["stacks must be a non-empty list of stack descriptions"]
    problems, seen = [], set()
    for i, s in enumerate(stacks):
        if not isinstance(s, dict):
            problems.append("stacks[%d] is not a dict" % i)
            continue
        name = s.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append("stacks[%d]: name %r is not an identifier" % (i, name))
        elif name in seen:
            problems.append("stack %r is listed twice" % name)
        seen.add(name)
        if not s.get("source"):
            problems.append("stack %r has no source host" % name)
        if not isinstance(s.get("labels", {}), dict):
            problems.append("stack %r: labels must be a dict" % name)
        for key in ("requires", "spread"):
            if not isinstance(s.get(key, []), list):
                problems.append("stack %r: %s must be a list" % (name, key))
        if s.get("cpus") is not None and (not isinstance(s["cpus"], int) or s["cpus"] < 1):
            problems.append("stack %r: cpus must be a positive integer" % name)
        if not isinstance(s.get("vars", {}), dict):
            problems.append("stack %r: vars must be a dict" % name)
    return problems


FLEET_KEYS = ("labels", "requires", "spread", "cpus", "vars")


def stack_hosts(stacks, prefix="stack_", trust=lambda value: value, slices=1):
    """[(inventory host name, its variables, its groups)] of the stacks; TRUST marks the interpreter's
    template as one (ansible-core 2.19 templates only what is trusted). With SLICES > 1 each stack is
    also in one of the groups stacks_slice_K_of_SLICES, dealt in turn in the file's order."""
    out = []
    for i, s in enumerate(stacks):
        groups = ["stacks", "stacks_on_" + group_part(s["source"])]
        groups += ["stacks_slice_%d_of_%d" % (i % slices + 1, slices)] if slices > 1 else []
        groups += ["stacks_%s_%s" % (group_part(k), group_part(v)) for k, v in sorted((s.get("labels") or {}).items())]
        hostvars = dict(s.get("vars") or {})
        hostvars.update({
            "ansible_connection": "local", "ansible_python_interpreter": trust("{{ ansible_playbook_python }}"),
            "stacklift_stack_description": {k: v for k, v in s.items() if k not in FLEET_KEYS},
            "stacklift_stack_source": s["source"],
            "stacklift_fleet": {"labels": s.get("labels") or {}, "requires": s.get("requires") or [],
                                "spread": s.get("spread") or [], "cpus": s.get("cpus")}})
        out.append((prefix + s["name"], hostvars, groups))
    return out
