# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ssh_hops
short_description: The hosts a source goes through to reach a target host over SSH
version_added: 0.2.0
description:
- The inventory names of the hosts a source goes through to reach the target named by the input (its
  C(stacklift_ssh_jump_host), that host's own and so on), in the order the source passes them, then the target.
- The preflight trusts the SSH host key of every one of them on the sources.
author:
- stacklift developers (@stacklift)
options:
  _input:
    description: The target's inventory name.
    type: str
    required: true
  hostvars:
    description: The play's C(hostvars).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Every host a source passes through on its way to the targets
  ansible.builtin.debug:
    msg: "{{ ['node2', 'node3'] | map('stacklift.migrate.ssh_hops', hostvars) | flatten | unique }}"
"""

RETURN = r"""
_value:
  description: Inventory names, the jump hosts in the order the source passes them, the target last.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def ssh_hops(name, hostvars):
    """The inventory names of the hosts a source goes through to reach NAME: its jump hosts, then NAME."""
    walk = []
    while name is not None:
        if name not in hostvars:
            raise AnsibleFilterError("%s is not a host of the inventory" % name)
        if name in walk:
            raise AnsibleFilterError("the jump hosts of %s go round in a circle (%s)"
                                     % (walk[0], " -> ".join(walk + [name])))
        walk.append(name)
        name = hostvars[name].get("stacklift_ssh_jump_host") or None
    return walk[::-1]


class FilterModule:
    def filters(self):
        return {"ssh_hops": ssh_hops}
