# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: stack_hosts
short_description: Stacks listed in a variable, as the inventory hosts the fleet playbooks run on
version_added: 0.1.0
description:
  - "What the C(stacklift.migrate.stacks) inventory plugin makes of a file, made of a list of stacks
    in a variable (C(stacklift_stacks) in C(group_vars), say): for each stack, the arguments of
    M(ansible.builtin.add_host) (C(name), C(groups) and the stack host's variables)."
  - Every problem of the list is reported at once.
author:
  - stacklift developers (@stacklift)
options:
  _input:
    description: The stacks, as the inventory plugin's O(stacklift.migrate.stacks#inventory:stacks) option takes them.
    type: list
    elements: dict
    required: true
  prefix:
    description: Prefix of the stacks' inventory host names.
    type: str
    default: stack_
"""

EXAMPLES = r"""
- name: Add the stacks of stacklift_stacks to the inventory
  ansible.builtin.add_host: "{{ item | combine({'ansible_python_interpreter': ansible_playbook_python}) }}"
  loop: "{{ stacklift_stacks | stacklift.migrate.stack_hosts }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description: "C([{name, groups, ansible_connection, stacklift_stack_description, stacklift_stack_source, stacklift_fleet, ...}])."
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.hosts import (
    stack_hosts as hosts_of, stack_problems)


def stack_hosts(stacks, prefix="stack_"):
    problems = stack_problems(stacks)
    if problems:
        raise AnsibleFilterError("stack_hosts: %s" % "; ".join(problems))
    out = []
    for name, hostvars, groups in hosts_of(stacks, prefix):
        entry = {k: v for k, v in hostvars.items() if k != "ansible_python_interpreter"}
        entry.update(name=name, groups=groups)
        out.append(entry)
    return out


class FilterModule:
    def filters(self):
        return {"stack_hosts": stack_hosts}
