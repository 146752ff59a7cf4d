#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: fleet_plan
short_description: Place many stacks on target hosts by capacity, deterministically
version_added: 0.3.0
description:
  - Decides where each stack of a fleet migration goes, from what its containers take on their
    source and what each target has room for (memory, archive space, CPUs), the labels a stack
    requires, its spread groups (no two stacks of one group on a host) and each target's limit of
    stacks. Largest stacks first, each on the suitable target left with the most free memory; the
    same inputs always give the same plan.
  - A stack that fits nowhere is listed in RV(unplaced) with each target's reason; the others are
    still placed. A stack whose description names a target is checked against it, not moved elsewhere.
  - Runs anywhere (the controller, with C(delegate_to=localhost)); changes nothing.
author:
  - stacklift developers (@stacklift)
options:
  stacks:
    description: The stacks' descriptions (C(stacklift_stack_description) of the stacks inventory); a C(target) in one pins it there.
    type: list
    elements: dict
    required: true
  usage:
    description:
      - What M(stacklift.migrate.host_capacity) measured of each stack on its source (its results, in
        the order of O(stacks); their C(containers) are read).
    type: list
    elements: dict
    required: true
  fleet:
    description: Each stack's C(requires) and C(spread) (C(stacklift_fleet) of the stacks inventory), in the order of O(stacks).
    type: list
    elements: dict
    default: []
  targets:
    description: The hosts stacks may go to.
    type: list
    elements: str
    required: true
  capacity:
    description: M(stacklift.migrate.host_capacity)'s result on each target, in the order of O(targets).
    type: list
    elements: dict
    required: true
  target_labels:
    description: "C({host: [labels]}) of the targets, matched against the stacks' C(requires)."
    type: dict
    default: {}
  max_stacks:
    description: "C({host: limit}) of stacks a target may run (the ones it runs already count)."
    type: dict
    default: {}
  target_stacks:
    description: "C({host: [{name, spread}]}) of the stacks the targets run already."
    type: dict
    default: {}
  reserved_memory:
    description: "C({host: bytes}) of memory a target keeps for itself, not counted as free."
    type: dict
    default: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Plan the drain
  stacklift.migrate.fleet_plan:
    stacks: "{{ stacks | map('extract', hostvars, 'stacklift_stack_description') }}"
    fleet: "{{ stacks | map('extract', hostvars, 'stacklift_fleet') }}"
    usage: "{{ usage.results }}"
    targets: [node2, node3]
    capacity: "{{ capacity.results }}"
    target_labels: {node2: [ssd]}
    max_stacks: {node2: 10, node3: 10}
  delegate_to: localhost
  register: fleet
"""

RETURN = r"""
placements:
  description: Where each placed stack goes, sorted by stack.
  returned: always
  type: list
  elements: dict
  sample: [{stack: shop, source: node1, target: node2}]
unplaced:
  description: Stacks that fit on no target, with each target's reason.
  returned: always
  type: list
  elements: dict
  sample: [{stack: big, source: node1, why: ["node2: 900 MB of free memory, the stack needs 2000 MB"]}]
targets:
  description: "C({stack name: target}) of the placed stacks."
  returned: always
  type: dict
demands:
  description: What each stack was placed by (C(memory_bytes), C(archive_bytes)).
  returned: always
  type: list
  elements: dict
hosts:
  description: What each target has left once the plan is done.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacklift.migrate.plugins.module_utils.fleet import stack_demand
from ansible_collections.stacklift.migrate.plugins.module_utils.placement import PlacementError, place


def main():
    module = AnsibleModule(argument_spec=dict(
        stacks=dict(type="list", elements="dict", required=True),
        usage=dict(type="list", elements="dict", required=True),
        fleet=dict(type="list", elements="dict", default=[]),
        targets=dict(type="list", elements="str", required=True),
        capacity=dict(type="list", elements="dict", required=True),
        target_labels=dict(type="dict", default={}),
        max_stacks=dict(type="dict", default={}),
        target_stacks=dict(type="dict", default={}),
        reserved_memory=dict(type="dict", default={}),
    ), supports_check_mode=True)
    p = module.params
    problems = []
    if len(p["usage"]) != len(p["stacks"]):
        problems.append("usage has %d entries for %d stacks" % (len(p["usage"]), len(p["stacks"])))
    if p["fleet"] and len(p["fleet"]) != len(p["stacks"]):
        problems.append("fleet has %d entries for %d stacks" % (len(p["fleet"]), len(p["stacks"])))
    if len(p["capacity"]) != len(p["targets"]):
        problems.append("capacity has %d entries for %d targets" % (len(p["capacity"]), len(p["targets"])))
    if problems:
        module.fail_json(msg="; ".join(problems))
    demands, pinned = [], {}
    for i, desc in enumerate(p["stacks"]):
        extra = p["fleet"][i] if p["fleet"] else {}
        desc = dict(desc, requires=extra.get("requires") or [], spread=extra.get("spread") or [])
        demands.append(stack_demand(desc, p["usage"][i].get("containers") or {}))
        if desc.get("target"):
            pinned[desc["name"]] = desc["target"]
    hosts = []
    for name, cap in zip(p["targets"], p["capacity"]):
        limit = p["max_stacks"].get(name)
        free = int(cap.get("free_memory_bytes") or 0) - int(p["reserved_memory"].get(name) or 0)
        hosts.append({"name": name, "free_memory_bytes": max(0, free),
                      "free_archive_bytes": cap.get("free_archive_bytes"), "cpus": cap.get("cpus"),
                      "labels": p["target_labels"].get(name) or [],
                      "max_stacks": int(limit) if limit is not None else None,
                      "stacks": p["target_stacks"].get(name) or []})
    try:
        plan = place(demands, hosts, pinned=pinned)
    except PlacementError as e:
        module.fail_json(msg=str(e))
    plan["targets"] = dict((pl["stack"], pl["target"]) for pl in plan["placements"])
    module.exit_json(changed=False, demands=demands, **plan)


if __name__ == "__main__":
    main()
