#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_fence
short_description: Cut containers off the network, silently, for a consistent checkpoint of a stack
version_added: 0.1.0
description:
  - Puts an nftables table in each container's network namespace that drops every packet but
    loopback (V(present)), or removes it (V(absent)). All the containers given are fenced one right
    after the other, so a stack is cut at one moment.
  - Peers of a fenced container see silence, not resets. Checkpoints taken afterwards hold both
    sides of every connection inside the stack in the same state, and after the restore the
    kernel retransmits what was in flight.
  - Podman cannot checkpoint a paused container, so pausing is no way to cut a stack; this is.
  - The table lives in the container's network namespace; a restore makes a new namespace
    without it.
author:
  - stacklift developers (@stacklift)
requirements:
  - nsenter and nft on the host
options:
  name:
    description: Containers to fence or unfence.
    type: list
    elements: str
    required: true
  state:
    description: V(present) fences, V(absent) lifts the fence.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
seealso:
  - module: stacklift.migrate.container_checkpoint
"""

EXAMPLES = r"""
- name: Cut the whole stack off the network at once
  stacklift.migrate.container_fence:
    name: [shop-app, shop-cache, shop-db]

- name: Lift the fence (rollback before anything was checkpointed)
  stacklift.migrate.container_fence:
    name: [shop-app, shop-cache, shop-db]
    state: absent
"""

RETURN = r"""
containers:
  description: Each container, whether it is fenced now, and when its fence went up or down.
  returned: always
  type: list
  elements: dict
  sample: [{name: shop-db, fenced: true, changed: true, at: 1764241200.123}]
started_at:
  description: Epoch time of the first fence change.
  returned: always
  type: float
  sample: 1764324915.412
finished_at:
  description: Epoch time of the last fence change.
  returned: always
  type: float
  sample: 1764324915.424
"""

import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import Host
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    spec = ArgumentSpec(dict(
        name=dict(type="list", elements="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    engine = engine_for_module(module)
    want = module.params["state"] == "present"
    host = Host(engine, module.run_command, nsenter=module.get_bin_path("nsenter", required=True),
                nft=module.get_bin_path("nft", required=True))
    pids = {}
    try:
        for name in module.params["name"]:
            state = engine.container(name).get("State") or {}
            if not state.get("Running"):
                if want:
                    module.fail_json(msg="container %r is %s: only a running container can be fenced"
                                     % (name, state.get("Status")))
                continue  # nothing to lift: a container that is not running has no namespace to fence
            pids[name] = state["Pid"]
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    # Decide everything first, so the changes themselves follow each other closely.
    results = []
    for name in module.params["name"]:
        fenced = name in pids and host.container_fenced(pids[name])
        results.append({"name": name, "fenced": fenced, "changed": name in pids and fenced != want, "at": None})
    started = time.time()
    if not module.check_mode:
        for entry in [e for e in results if e["changed"]]:
            try:
                if want:
                    host.fence_container(pids[entry["name"]], entry["name"])
                else:
                    host.unfence_container(pids[entry["name"]], entry["name"])
            except StackliftError as e:
                module.fail_json(**dict(e.fail_kwargs(), containers=results))
            entry["at"] = time.time()
            entry["fenced"] = want
    changed = any(e["changed"] for e in results)
    diff = {"before": {e["name"]: not want if e["changed"] else e["fenced"] for e in results},
            "after": {e["name"]: want if e["changed"] else e["fenced"] for e in results}}
    module.exit_json(changed=changed, containers=results, started_at=started, finished_at=time.time(), diff=diff)


if __name__ == "__main__":
    main()
