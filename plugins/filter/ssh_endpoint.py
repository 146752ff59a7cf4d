# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ssh_endpoint
short_description: Where a source reaches a target host over SSH, host to host
version_added: 0.1.0
description:
  - The SSH endpoint C(user@address:port) by which a source host sends archives and images to the
    target host named by the input, from the target's inventory variables; the collection's modules
    take it as their C(target_host) (or in C(target_addresses)).
  - The address is the target's C(ansible_host) (else its inventory name), the port its
    C(ansible_port) (else 22), the user its C(stacklift_ssh_user_on_host) (else V(root)). A user
    other than root runs the target's side through C(sudo -n).
  - When the target has C(stacklift_ssh_jump_host) (an inventory host), the endpoint goes through
    that host first, as OpenSSH's ProxyJump does (C(jump_endpoint,target_endpoint)); the jump host
    may have a jump host of its own.
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
  known_hosts:
    description: Give the name the target has in a known_hosts file instead (C(address), or C([address]:port) off port 22).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Send the stack's images to node2, host to host
  stacklift.migrate.image_sync:
    container: shop-db
    target_host: "{{ 'node2' | stacklift.migrate.ssh_endpoint(hostvars) }}"
  delegate_to: node1
"""

RETURN = r"""
_value:
  description:
    - "C(user@address:port) (C(user@[address]:port) for an IPv6 address), after any jump hosts'
      endpoints and a comma; or, with O(known_hosts), the target's known_hosts name."
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.stacklift.migrate.plugins.filter.ssh_hops import ssh_hops
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import known_hosts_name


def _address(hv, name):
    return str(hv.get("ansible_host") or name), int(hv.get("ansible_port") or 22)


def _endpoint(hv, name):
    host, port = _address(hv, name)
    user = str(hv.get("stacklift_ssh_user_on_host") or "root")
    return "%s@%s:%d" % (user, "[%s]" % host if ":" in host else host, port)


def ssh_endpoint(name, hostvars, known_hosts=False):
    if known_hosts:
        if name not in hostvars:
            raise AnsibleFilterError("ssh_endpoint: %s is not a host of the inventory" % name)
        return known_hosts_name(*_address(hostvars[name], name))
    try:
        path = ssh_hops(name, hostvars)
    except AnsibleFilterError as e:
        raise AnsibleFilterError("ssh_endpoint: %s" % e)
    return ",".join(_endpoint(hostvars[hop], hop) for hop in path)


class FilterModule:
    def filters(self):
        return {"ssh_endpoint": ssh_endpoint}
