# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: stacks
short_description: Container stacks as inventory hosts, for fleet migrations
version_added: 0.1.0
description:
  - Reads a YAML file of stack descriptions (the same description C(stacklift_stack) takes) and
    adds one inventory host per stack, so that Ansible can target, limit and group stacks as it
    does hosts; C(playbooks/drain_host.yml) and C(playbooks/migrate_stacks.yml) migrate them.
  - Each stack host runs on the controller (C(ansible_connection=local)); its description is in
    the variable C(stacklift_stack_description), its source host in C(stacklift_stack_source), and
    what placement reads in C(stacklift_fleet) (C(labels), C(requires), C(spread), C(cpus)).
  - Groups made, C(stacks) with every stack, C(stacks_on_HOST) with the stacks running on HOST,
    C(stacks_LABEL_VALUE) for each of a stack's labels, and with O(slices) the groups
    C(stacks_slice_K_of_N); O(keyed_groups), O(groups) and O(compose) add more, as in other
    constructed inventories.
  - The file's name must end in C(.stacks.yml) or C(.stacks.yaml), and the plugin must be enabled
    (C(enable_plugins) in C(ansible.cfg) lists C(stacklift.migrate.stacks)).
author:
  - stacklift developers (@stacklift)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as this plugin's.
    required: true
    choices: [stacklift.migrate.stacks]
  stacks:
    description:
      - The stacks, each a stack description (C(name), C(source), C(services), C(networks), and
        optionally C(target)), with optional C(labels) (a dict), C(requires) (host labels a target
        must have), C(spread) (groups of which no two stacks may share a host), C(cpus) (CPUs a
        target must have) and C(vars)
        (variables of the stack's inventory host, for example its C(stacklift_traffic_switch_tasks)).
    type: list
    elements: dict
    required: true
  host_prefix:
    description: Prefix of the stacks' inventory host names, to keep them apart from real hosts.
    type: str
    default: stack_
  slices:
    description:
      - Deal the stacks in turn, in the file's order, into this many groups C(stacks_slice_1_of_N) to
        C(stacks_slice_N_of_N), so that N jobs at once (the parallel nodes of an AWX workflow, each
        limited to one slice) drain a host together. Each job keeps the whole inventory, the machines
        included, which AWX's own job slicing would split among its slices.
      - 1 makes no slice groups.
    type: int
    default: 1
    version_added: 0.3.0
"""

EXAMPLES = r"""
# fleet.stacks.yml
plugin: stacklift.migrate.stacks
stacks:
  - name: shop
    source: node1
    labels: {team: web}
    spread: [shops]
    networks: [{name: shopnet, subnet: 10.89.10.0/24}]
    services:
      - {name: db, container: shop-db, probe: {type: postgres}}
      - {name: app, container: shop-app, depends_on: [db], probe: {type: http, port: 8080}}
  - name: sessions
    source: node1
    services: [{name: cache, container: sessions-redis, probe: {type: redis}}]
keyed_groups:
  - key: stacklift_stack_description.labels.team | default('none')
    prefix: team

# ansible-inventory -i .lab/inventory.yml -i fleet.stacks.yml --graph
# ansible-playbook stacklift.migrate.drain_host -i hosts.yml -i fleet.stacks.yml -e stacklift_drain_host=node1
"""

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

from ansible_collections.stacklift.migrate.plugins.module_utils._stack.hosts import stack_hosts, stack_problems

try:
    from ansible.template import trust_as_template  # ansible-core 2.19: what a plugin writes is data until trusted
except ImportError:  # older ansible-core templates every string
    def trust_as_template(value):
        return value


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "stacklift.migrate.stacks"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".stacks.yml", ".stacks.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        stacks = self.get_option("stacks")
        problems = stack_problems(stacks)
        if problems:
            raise AnsibleParserError("%s: %s" % (path, "; ".join(problems)))
        strict = self.get_option("strict")
        slices = self.get_option("slices")
        if slices < 1:
            raise AnsibleParserError("%s: slices must be 1 or more, not %d" % (path, slices))
        for host, hostvars, groups in stack_hosts(stacks, self.get_option("host_prefix"), trust=trust_as_template,
                                                  slices=slices):
            for group in groups:
                self.inventory.add_group(group)
            self.inventory.add_host(host, group=groups[0])
            for group in groups[1:]:
                self.inventory.add_child(group, host)
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
