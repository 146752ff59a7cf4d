#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_network
short_description: Make sure a container network exists with the subnets a stack needs
version_added: 0.1.0
description:
  - Creates a network with the given subnets when it is missing (V(present)), or removes one that
    no container uses (V(absent)), through the host's engine.
  - A restored container keeps its addresses, so the target needs the source's networks with the
    same subnets. A network that exists with other subnets is not touched; the module fails,
    naming both, since containers may be using it.
author:
  - stacklift developers (@stacklift)
options:
  name:
    description: Name of the network.
    type: str
    required: true
  subnets:
    description: Its subnets, in CIDR notation. Empty lets the engine choose (only when it is created).
    type: list
    elements: str
    default: []
  state:
    description: V(present) makes it, V(absent) removes it.
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
  - module: stacklift.migrate.container_restore
"""

EXAMPLES = r"""
- name: The shop's network on the target, with the source's subnet
  stacklift.migrate.container_network:
    name: shopnet
    subnets: [10.89.10.0/24]
"""

RETURN = r"""
network:
  description: The network after the task (nothing when V(absent)).
  returned: always
  type: dict
  sample: {name: shopnet, subnets: [10.89.10.0/24]}
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def current(engine, name):
    try:
        net = engine.network(name)
    except NotFound:
        return None
    return {"name": net["name"], "subnets": sorted(net["subnets"]), "containers": len(net["containers"])}


def main():
    spec = ArgumentSpec(dict(
        name=dict(type="str", required=True),
        subnets=dict(type="list", elements="str", default=[]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    p = module.params
    engine = engine_for_module(module)
    wanted = sorted(p["subnets"])
    try:
        before = current(engine, p["name"])
        if p["state"] == "present":
            if before is not None:
                if wanted and before["subnets"] != wanted:
                    module.fail_json(msg="network %r exists here with subnet %s, not %s; not changing a network "
                                     "containers may use" % (p["name"], ", ".join(before["subnets"]) or "none",
                                                             ", ".join(wanted)), network=before)
                module.exit_json(changed=False, network=before)
            after = {"name": p["name"], "subnets": wanted}
            if not module.check_mode:
                engine.create_network(p["name"], wanted)
                after = current(engine, p["name"])
        else:
            if before is None:
                module.exit_json(changed=False, network={})
            if before["containers"]:
                module.fail_json(msg="network %r is used by %d container(s); not removing it"
                                 % (p["name"], before["containers"]), network=before)
            after = None
            if not module.check_mode:
                engine.remove_network(p["name"])
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    module.exit_json(changed=True, network=after or {}, diff={"before": before or {}, "after": after or {}})


if __name__ == "__main__":
    main()
