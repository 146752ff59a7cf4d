#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_capacity
short_description: What a host has room for, and what given containers take on it
version_added: 0.1.0
description:
  - Reports the host's available memory, the free space where archives go and its CPUs, and for
    each container named in O(containers) the memory its processes use and the size of its named
    volumes; what M(stacklift.migrate.fleet_plan) places stacks by.
  - Changes nothing.
author:
  - stacklift developers (@stacklift)
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
options:
  containers:
    description: Containers to measure on this host. A container that is not running is reported as missing.
    type: list
    elements: str
    default: []
  stacks:
    description:
      - "Stack descriptions whose services' containers are measured too (a service's container defaults to its name);
        RV(stacks_here) names those whose containers all run here."
      - A stack's C(engine) (V(auto), V(podman) or V(docker)) measures its containers with that engine, over
        O(engine), so a fleet may hold stacks of both engines.
    type: list
    elements: dict
    default: []
  archive_dir:
    description: Where archives go on this host (its file system's free space is reported).
    type: path
    default: /var/lib/stacklift/checkpoints
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Room on the targets
  stacklift.migrate.host_capacity:
  delegate_to: "{{ item }}"
  loop: [node2, node3]
  register: capacity

- name: What the shop takes on its source
  stacklift.migrate.host_capacity:
    containers: [shop-db, shop-cache, shop-app]
  delegate_to: node1

- name: Which of the fleet's stacks run on each host, and what they take
  stacklift.migrate.host_capacity:
    stacks: "{{ groups['stacks'] | map('extract', hostvars, 'stacklift_stack_description') }}"
  delegate_to: "{{ item }}"
  loop: [node1, node2, node3]
"""

RETURN = r"""
free_memory_bytes:
  description: The host's available memory (MemAvailable).
  returned: always
  type: int
  sample: 3221225472
free_archive_bytes:
  description: Free space of the file system holding O(archive_dir).
  returned: always
  type: int
  sample: 52000000000
cpus:
  description: The host's CPUs.
  returned: always
  type: int
  sample: 4
containers:
  description: For each container measured, C(memory_bytes) (resident memory of its processes) and C(volume_bytes).
  returned: always
  type: dict
  sample: {shop-db: {memory_bytes: 52000000, volume_bytes: 0}}
missing:
  description: Containers of O(containers) that are not running here.
  returned: always
  type: list
  sample: ["shop-app"]
  elements: str
stacks_here:
  description: The stacks of O(stacks) whose containers all run on this host.
  returned: always
  type: list
  sample: ["sessions", "shop"]
  elements: str
used_bytes:
  description: Memory and volume bytes of all measured containers together.
  returned: always
  type: int
  sample: 152010240
"""

import os

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import container_volumes
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import (
    container_memory_bytes, free_bytes, memory_available, tree_bytes)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    spec = ArgumentSpec(dict(
        containers=dict(type="list", elements="str", default=[]),
        stacks=dict(type="list", elements="dict", default=[]),
        archive_dir=dict(type="path", default="/var/lib/stacklift/checkpoints"),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    result = dict(changed=False, free_memory_bytes=memory_available(), cpus=os.cpu_count() or 1,
                  free_archive_bytes=free_bytes(module.params["archive_dir"]), containers={}, missing=[])
    # {container: the engine it is measured with}
    names = {c: module.params["engine"] for c in module.params["containers"]}
    by_stack = {}
    for stack in module.params["stacks"]:
        by_stack[stack.get("name")] = [s.get("container") or s.get("name") for s in stack.get("services") or []
                                       if isinstance(s, dict)]
        for c in by_stack[stack.get("name")]:
            names.setdefault(c, stack.get("engine") or module.params["engine"])
    found = {}
    for requested in sorted(set(names.values())):
        # a host without a stack's engine runs none of its containers
        engine = engine_for_module(module, requested, required=requested == module.params["engine"])
        if engine is not None:
            try:
                found.update(engine.containers_named(n for n, e in names.items() if e == requested))
            except StackliftError as e:
                module.fail_json(**e.fail_kwargs())
    for name in names:
        c = found.get(name)
        state = (c or {}).get("State") or {}
        if not state.get("Running"):
            result["missing"].append(name)
            continue
        result["containers"][name] = {
            "memory_bytes": container_memory_bytes(state.get("Pid") or 0),
            "volume_bytes": sum(tree_bytes(v) for v in container_volumes(c).values())}
    result["stacks_here"] = sorted(n for n, cs in by_stack.items() if cs and all(c in result["containers"] for c in cs))
    result["used_bytes"] = sum(c["memory_bytes"] + c["volume_bytes"] for c in result["containers"].values())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
