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
version_added: 0.1.0
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
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
options:
  stacks:
    description:
      - "The stacks' descriptions (C(stacklift_stack_description) of the stacks inventory); a C(target) in one pins it there."
      - Each stack moves from the host where all its containers run (its declared C(source) when they run there).
    type: list
    elements: dict
    required: true
  fleet:
    description: "Each stack's C(requires), C(spread) and C(cpus) (C(stacklift_fleet) of the stacks inventory), in the order of O(stacks)."
    type: list
    elements: dict
    default: []
  measured:
    description:
      - "M(stacklift.migrate.host_capacity)'s results, with O(stacks) given to it, on every host involved
        (the stacks' sources and the targets), each with C(item) naming its host (a registered loop's C(results))."
    type: list
    elements: dict
    required: true
  targets:
    description: The hosts stacks may go to (a stack never goes to the host it runs on).
    type: list
    elements: str
    required: true
  from_host:
    description: Only the stacks running on this host move (a drain); the others are listed in RV(excluded).
    type: str
  target_labels:
    description: "C({host: [labels]}) of the targets, matched against the stacks' C(requires)."
    type: dict
    default: {}
  max_stacks:
    description: "C({host: limit}) of stacks a target may run (the ones it runs already count)."
    type: dict
    default: {}
  reserved_memory:
    description: "C({host: bytes}) of memory a target keeps for itself, not counted as free."
    type: dict
    default: {}
  select:
    description:
      - "A JMESPath expression choosing which of O(stacks) move; the others are listed in RV(excluded).
        It runs on the list of the stacks, each its description with its C(labels), C(requires), C(spread),
        C(cpus) and C(runs_on) (the host it runs on), and returns stacks or their names."
      - "For example V([?labels.team=='web']), V([?name=='shop' || name=='sessions'].name), V([?runs_on=='node1'])."
      - Every stack moves when it is empty.
    type: str
    default: ""
  memory_budget:
    description:
      - "C({host: bytes}): the most memory the stacks on a target may use together, counting the ones it
        runs already (as measured there); a target without an entry is bounded by its free memory only."
    type: dict
    default: {}
requirements:
  - jmespath (with O(select))
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Measure every host involved
  stacklift.migrate.host_capacity:
    stacks: "{{ stacks | map('extract', hostvars, 'stacklift_stack_description') }}"
  delegate_to: "{{ item }}"
  loop: [node1, node2, node3]
  register: measured

- name: Plan the drain of node1
  stacklift.migrate.fleet_plan:
    stacks: "{{ stacks | map('extract', hostvars, 'stacklift_stack_description') }}"
    fleet: "{{ stacks | map('extract', hostvars, 'stacklift_fleet') }}"
    measured: "{{ measured.results }}"
    targets: [node2, node3]
    from_host: node1
    target_labels: {node2: [ssd]}
    max_stacks: {node2: 10, node3: 10}
    select: "[?labels.team=='web']"
    memory_budget: {node3: "{{ 8 * 1024 ** 3 }}"}
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
  sample: {"shop": "node2", "sessions": "node3"}
sources:
  description: "C({stack name: the host it runs on}) (null for a stack running nowhere)."
  returned: always
  type: dict
  sample: {"shop": "node1", "sessions": "node1", "old": null}
excluded:
  description: Stacks that do not run on O(from_host), left out of the plan.
  returned: always
  type: list
  sample: ["reports"]
  elements: str
demands:
  description: What each stack was placed by (C(memory_bytes), C(archive_bytes)).
  returned: always
  type: list
  sample:
    - name: shop
      source: node1
      memory_bytes: 152000000
      archive_bytes: 353326592
      requires: []
      spread:
      - shops
      cpus: null
      missing: []
  elements: dict
hosts:
  description: What each target has left once the plan is done.
  returned: always
  type: dict
  sample: {"node2": {"free_memory_bytes": 1548000000, "free_archive_bytes": 52000000000, "stacks": ["shop"]}}
"""

import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.fleet import plan_inputs

try:
    import jmespath  # noqa: F401, pylint: disable=unused-import
except ImportError:
    JMESPATH_IMPORT_ERROR = traceback.format_exc()
else:
    JMESPATH_IMPORT_ERROR = None
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.placement import place
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    module = ArgumentSpec(dict(
        stacks=dict(type="list", elements="dict", required=True),
        fleet=dict(type="list", elements="dict", default=[]),
        measured=dict(type="list", elements="dict", required=True),
        targets=dict(type="list", elements="str", required=True),
        from_host=dict(type="str"),
        target_labels=dict(type="dict", default={}),
        max_stacks=dict(type="dict", default={}),
        reserved_memory=dict(type="dict", default={}),
        memory_budget=dict(type="dict", default={}),
        select=dict(type="str", default=""),
    )).create_module(supports_check_mode=True)
    p = module.params
    if p["fleet"] and len(p["fleet"]) != len(p["stacks"]):
        module.fail_json(msg="fleet has %d entries for %d stacks" % (len(p["fleet"]), len(p["stacks"])))
    measured = {r.get("item"): r for r in p["measured"]}
    if None in measured:
        module.fail_json(msg="each result of measured needs the item naming its host (a registered loop's results)")
    missing = sorted(set(p["targets"]) - set(measured))
    if missing:
        module.fail_json(msg="no measurement of the target%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing)))
    if p["select"] and JMESPATH_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)
    try:
        demands, hosts, pinned, sources, excluded, nowhere = plan_inputs(
            p["stacks"], p["fleet"], measured, p["targets"], p["target_labels"], p["max_stacks"],
            p["reserved_memory"], p["from_host"], p["memory_budget"], p["select"])
        plan = place(demands, hosts, pinned=pinned)
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    plan["unplaced"] = sorted(plan["unplaced"] + nowhere, key=lambda u: u["stack"])
    plan["targets"] = {pl["stack"]: pl["target"] for pl in plan["placements"]}
    module.exit_json(changed=False, demands=demands, sources=sources, excluded=excluded, **plan)


if __name__ == "__main__":
    main()
