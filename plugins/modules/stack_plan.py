#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: stack_plan
short_description: Validate a stack description and order its services for a migration
version_added: 0.1.0
description:
  - Checks a stack description and returns the plan a migration follows - services in tiers,
    dependencies first - or fails with one clear message for each mistake (a cycle in
    C(depends_on), an unknown dependency, a duplicate name, a missing or stopped container).
  - Run it on the source host to check the containers (O(check_containers)) or to read
    C(depends_on) from compose labels (O(discover_depends_on)); elsewhere it only reads the
    description.
  - "A stack: C(name), C(source) and C(target) hosts, C(networks) (each C(name) and C(subnet)) and
    C(services). A service: C(name), C(container) (default: the name), C(depends_on) (names of
    services), C(probe) (the options of M(stacklift.migrate.service_probe), C(type) at least;
    default a tcp probe), C(quiesce) (C(method): none, postgres_idle, http_drain or
    connections_zero, with its options), C(tcp) (established or close), C(memory) (eager, lazy, precopy+lazy or auto), and C(source) and
    C(target) to override the stack's hosts."
  - The returned plan carries no password; see the C(stacklift.migrate.stack_secrets) filter.
author:
  - stacklift developers (@stacklift)
options:
  stack:
    description: The stack description.
    type: dict
    required: true
  check_containers:
    description: Check that the containers of the services whose source is O(host) exist here and run.
    type: bool
    default: false
  discover_depends_on:
    description: Add the dependencies recorded in compose labels (C(com.docker.compose.depends_on)) of
      the containers of the services whose source is O(host).
    type: bool
    default: false
  depends_on:
    description:
      - "Dependencies found elsewhere, by service (C({app: [db]})), added to those the description gives:
        the RV(discovered_depends_on) of this module's calls on each source host, merged, so that a stack
        spread over several sources keeps what each of them read."
    type: dict
    default: {}
  host:
    description: Inventory name of the host the module runs on, to pick its services.
      Defaults to every service.
    type: str
  memory:
    description:
      - How the memory of services whose stack and own description name no C(memory) crosses.
      - V(eager) restores all of it before the process runs again.
      - V(lazy) runs the process as soon as its small state is back, and fills its memory in afterwards;
        the pages stay on the source, which serves them to the target over SSH until the target holds them
        all (Podman with M(stacklift.migrate.lazy_runtime) on both hosts, which the preflight installs). The
        pause no longer grows with the memory.
      - V(precopy+lazy) is lazy, and before the fence, while the service still serves, pre-dumps its memory in
        rounds, so that the checkpoint made with it frozen writes only the pages written to since the last
        round. It needs a kernel that tracks written pages (C(CONFIG_MEM_SOFT_DIRTY), which stock Debian and
        RHEL amd64 kernels have); the preflight refuses it on a source without, before anything is frozen.
      - V(auto) is lazy for a service holding 256 MiB or more when it is checkpointed, pre-copied where the
        source can, and eager for smaller ones (their pause is the fixed part, which the lazy machinery only
        lengthens) and on Docker.
    type: str
    choices: [eager, lazy, precopy+lazy, auto]
    default: auto
  list_running:
    description: Return in RV(running) which of the stack's containers run on this host (a target,
      say, to tell a migration that already happened).
    type: bool
    default: false
  inventory_hosts:
    description: The inventory's hosts (C(groups['all'])); each source and target must be one of them.
    type: list
    elements: str
  settings:
    description: The roles' numeric settings (C(stacklift_probe_timeout), C(stacklift_quiesce_timeout),
      C(stacklift_probe_stable_for), C(stacklift_window_timeout)), checked against their minimums.
    type: dict
extends_documentation_fragment:
  - stacklift.migrate.attributes.READ_ONLY
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
seealso:
  - module: stacklift.migrate.service_probe
"""

EXAMPLES = r"""
- name: Plan the shop's migration, checking its containers on the source
  stacklift.migrate.stack_plan:
    stack:
      name: shop
      source: node1
      target: node2
      networks:
        - {name: shopnet, subnet: 10.89.10.0/24}
      services:
        - {name: db, container: shop-db, probe: {type: postgres}, quiesce: postgres_idle}
        - {name: cache, container: shop-cache, probe: {type: redis}}
        - name: app
          container: shop-app
          depends_on: [db, cache]
          probe: {type: http, port: 8080, path: /health}
          quiesce: {method: http_drain, port: 8080}
    check_containers: true
    host: "{{ inventory_hostname }}"
  register: plan
  delegate_to: node1
"""

RETURN = r"""
running:
  description: With O(list_running), the stack's containers that run on this host.
  returned: when O(list_running) is true
  type: list
  elements: str
  sample: [shop-app, shop-cache, shop-db]
plan:
  description: The migration plan.
  returned: success
  type: dict
  contains:
    name:
      description: Stack name.
      type: str
      sample: "shop"
    services:
      description: Services with their defaults filled in and their tier.
      type: list
      sample:
        - name: db
          container: shop-db
          source: node1
          target: node2
          depends_on: []
          tier: 0
          probe:
            type: postgres
          tcp: established
      elements: dict
    by_name:
      description: The same services by name.
      type: dict
      sample: {"db": {"name": "db", "container": "shop-db", "source": "node1", "target": "node2", "tier": 0}}
    checkpoint_order:
      description: Tiers of service names, dependencies first.
      type: list
      elements: list
      sample: [[db, cache], [app]]
    restore_order:
      description: Tiers of service names, dependencies first; each tier must be ready before the next.
      type: list
      sample: [["db", "cache"], ["app"]]
      elements: list
    quiesce_order:
      description: Tiers of service names, dependents first.
      type: list
      sample: [["app"], ["db", "cache"]]
      elements: list
    source_hosts:
      description: Hosts the stack leaves.
      type: list
      sample: ["node1"]
      elements: str
    target_hosts:
      description: Hosts the stack moves to.
      type: list
      sample: ["node2"]
      elements: str
    networks:
      description: Networks the stack needs on its targets.
      type: list
      sample: [{"name": "shopnet", "subnet": "10.89.10.0/24"}]
      elements: dict
discovered_depends_on:
  description: Dependencies read from compose labels, by service (with O(discover_depends_on)).
  returned: success
  type: dict
  sample: {app: [db, cache]}
problems:
  description: Every mistake found in the description.
  returned: failure
  type: list
  sample: ["service app: depends_on names db2, which is not a service of the stack", "services app, db: depends_on makes a cycle (app -> db -> app)"]
  elements: str
"""


from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.description import (
    PLAN_SPEC, StackError, as_planned, checked, compose_depends_on, compose_service, invalid, plan, secrets_of,
    with_depends_on, without_secrets)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def local_services(norm, host):
    return [s for s in norm["services"] if host is None or s["source"] == host]


def discover(inspected, stack, norm, host):
    """Fold compose depends_on labels into the description (compose service names -> stack names);
    INSPECTED: the host's containers of the stack ({name: inspect data or None})."""
    labels = {}
    for s in local_services(norm, host):
        labels[s["name"]] = ((inspected[s["container"]] or {}).get("Config") or {}).get("Labels") or {}
    by_compose = {compose_service(lab): name for name, lab in labels.items() if compose_service(lab)}
    found = {}
    for svc in stack["services"]:
        extra = [by_compose.get(d, d) for d in compose_depends_on(labels.get(svc.get("name")))]
        if extra:
            found[svc["name"]] = extra
    return with_depends_on(stack, found), found


def container_problems(engine, inspected, norm, host):
    problems = []
    known = None
    for s in local_services(norm, host):
        state = (inspected[s["container"]] or {}).get("State") or {}
        if inspected[s["container"]] is None:
            if known is None:
                known = sorted(c["name"] for c in engine.containers())
            problems.append("service %r: no container %r on %s (containers there: %s)"
                            % (s["name"], s["container"], s["source"], ", ".join(known) or "none"))
            continue
        if not state.get("Running") or state.get("Paused"):
            problems.append("service %r: container %r on %s is %s, not running"
                            % (s["name"], s["container"], s["source"], state.get("Status")))
    return problems


def main():
    module = PLAN_SPEC.merge(ENGINE_SPEC).create_module(supports_check_mode=True)
    p = module.params
    stack = as_planned(p)
    for parts in secrets_of(stack).values():
        for values in parts.values():
            module.no_log_values.update(values.values())
    discovered = {}
    try:
        norm = checked(stack, p["settings"], p["inventory_hosts"])
        running = None
        if p["list_running"]:
            names = set(svc["container"] for svc in norm["services"])
            running = sorted(c["name"] for c in engine_for_module(module).containers()
                             if c["name"] in names and c["state"] == "running")
        if p["check_containers"] or p["discover_depends_on"]:
            engine = engine_for_module(module)
            inspected = engine.containers_named(s["container"] for s in local_services(norm, p["host"]))
            if p["discover_depends_on"]:
                stack, discovered = discover(inspected, stack, norm, p["host"])
            problems = container_problems(engine, inspected, norm, p["host"]) if p["check_containers"] else []
            if problems:
                raise StackError(problems)
        result = plan(stack)
    except StackliftError as e:
        failure = e.fail_kwargs()
        if isinstance(e, StackError):
            failure["msg"] = invalid(stack, e)
        module.fail_json(**failure)
    module.exit_json(changed=False, plan=without_secrets(result), discovered_depends_on=discovered,
                     **({"running": running} if running is not None else {}))


if __name__ == "__main__":
    main()
