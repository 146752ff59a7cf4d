#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: service_probe
short_description: Wait until a service is ready
version_added: 0.1.0
description:
  - Probes a service from the host the task runs on until it is ready, then returns how many
    attempts and how long it took. Fails when it is not ready in time, with the last answer.
  - "Probes: V(tcp) (a connection is accepted), V(http) (status and, optionally, a body match),
    V(command) (a command inside the container exits 0), V(postgres) (a session is accepted and
    C(SELECT 1) answers 1), V(redis) (C(PING) answers C(PONG)). PostgreSQL and Redis are spoken to
    directly; the host needs no client."
  - A stability window (O(probe.stable_for)) asks for the service to stay ready that long, and a progress
    check (O(probe.progress_command)) asks for a value to have changed since a baseline, so a service that
    answers but is stuck is not taken as ready.
author:
  - stacklift developers (@stacklift)
options:
  probe:
    description:
      - The probe, in the shape a service's C(probe) has in a stack description (M(stacklift.migrate.stack_plan)),
        with this module's defaults for what it leaves out.
    type: dict
    required: true
    suboptions:
      type:
        description: Kind of probe.
        type: str
        required: true
        choices: [tcp, http, command, postgres, redis]
      host:
        description: Address to probe. Defaults to the address of O(container).
        type: str
      network:
        description: Network whose address of O(container) is used, when it has several.
        type: str
      port:
        description: Port. Defaults to 5432 for V(postgres), 6379 for V(redis), 80 for V(http) (443 with https).
        type: int
      path:
        description: HTTP path.
        type: str
        default: /
      scheme:
        description: HTTP scheme.
        type: str
        choices: [http, https]
        default: http
      status_code:
        description: HTTP status codes that count as ready.
        type: list
        elements: int
        default: [200]
      body_regex:
        description: Regular expression the HTTP body must match.
        type: str
      validate_certs:
        description: Check the server's certificate with https.
        type: bool
        default: true
      command:
        description: Command run inside O(container) for V(command); ready when it exits 0.
        type: list
        elements: str
      postgres_db:
        description: Database the V(postgres) probe asks C(SELECT 1) in.
        type: str
        default: postgres
      postgres_user:
        description: User the V(postgres) probe logs in as.
        type: str
        default: postgres
      postgres_password:
        description:
          - Password of O(probe.postgres_user), when the server asks for one (C(scram-sha-256), C(md5) or
            C(password) in C(pg_hba.conf)). Keep it in a vaulted variable; it is never logged.
        type: str
      redis_password:
        description: Redis password, when it asks for one (C(requirepass), or an ACL user's password).
          Keep it in a vaulted variable; it is never logged.
        type: str
      redis_user:
        description: Redis ACL user that O(probe.redis_password) belongs to (C(AUTH user password)). Without it,
          the password is the default user's.
        type: str
      retries:
        description: Attempts at most.
        type: int
        default: 60
      interval:
        description: Seconds between attempts.
        type: float
        default: 1.0
      timeout:
        description: Seconds at most for all attempts together.
        type: float
      connect_timeout:
        description: Seconds each attempt may take.
        type: float
        default: 2.0
      stable_for:
        description: Seconds the service must stay ready, attempt after attempt, to count as ready.
        type: float
        default: 0
      progress_command:
        description:
          - Command run inside O(container) whose output must differ from O(probe.progress_baseline) (or, without
            one, from its first output) for the service to count as ready.
        type: list
        elements: str
      progress_baseline:
        description: Output of O(probe.progress_command) that does not count as progress.
        type: str
  container:
    description: Container whose address is probed, and in which O(probe.command) and O(probe.progress_command) run.
    type: str
extends_documentation_fragment:
  - stacklift.migrate.attributes.READ_ONLY
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
seealso:
  - module: stacklift.migrate.container_restore
"""

EXAMPLES = r"""
- name: The database accepts sessions
  stacklift.migrate.service_probe:
    container: db
    probe:
      type: postgres
      timeout: 60

- name: The shop answers and its request counter moves
  stacklift.migrate.service_probe:
    container: app
    probe:
      type: http
      port: 8080
      path: /health
      stable_for: 2
      interval: 0.5
      progress_command: [curl, -sf, http://127.0.0.1:8080/stats]

- name: Each service of a stack, with the probe its description gives
  stacklift.migrate.service_probe:
    container: "{{ item.container }}"
    probe: "{{ item.probe }}"
  loop: "{{ shop_stack.services }}"
"""

RETURN = r"""
ready:
  description: Whether the service got ready.
  returned: always
  type: bool
  sample: true
attempts:
  description: Attempts made.
  returned: always
  type: int
  sample: 3
elapsed:
  description: Seconds until ready (or until giving up).
  returned: always
  type: float
  sample: 0.41
detail:
  description: The last probe's answer.
  returned: always
  type: str
  sample: "HTTP 200"
address:
  description: Address probed.
  returned: when the probe is a network one
  type: str
  sample: "10.89.10.4:8080"
started_at:
  description: Epoch time probing began.
  returned: always
  type: float
  sample: 1764324915.412
finished_at:
  description: Epoch time the service was ready (or probing gave up).
  returned: always
  type: float
  sample: 1764324915.822
progress_value:
  description: Last output of O(probe.progress_command).
  returned: when progress_command is set
  type: str
  sample: "42"
"""

import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._services import probes
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import container_address, container_ips
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def address_of(module, engine, p):
    c = engine.container(p["container"])
    address = container_address(c, p["network"])
    if not address:
        module.fail_json(msg="container %r is not on network %r (it is on: %s)"
                         % (p["container"], p["network"], ", ".join(container_ips(c)) or "none"))
    return address


def command_output(module, argv):
    """A callable that runs argv and returns its output (None when it fails): the progress value."""
    def read():
        rc, out, _err = module.run_command(argv)
        return out.strip() if rc == 0 else None
    return read


# service_probe's defaults for what a probe leaves out (a stack's probes leave them to the window).
PROBE_DEFAULTS = dict(
    type=dict(required=True), path=dict(default="/"), scheme=dict(default="http"), status_code=dict(default=[200]),
    validate_certs=dict(default=True), postgres_user=dict(default="postgres"), postgres_db=dict(default="postgres"),
    retries=dict(default=60), interval=dict(default=1.0), connect_timeout=dict(default=2.0), stable_for=dict(default=0),
)


def probe_problems(p):
    """What the probe P (with ``container``) lacks, beyond its argument spec."""
    problems = probes.below_minimums(p, probes.PROBE_MINIMUMS)
    if not p["host"] and not p["container"]:
        problems.append("probe.host or container is needed: where to probe")
    needs_container = [k for k in ("command", "progress_command", "network") if p[k] and not p["container"]]
    problems += ["probe.%s needs container" % k for k in needs_container]
    if p["type"] == "command" and not (p["command"] and p["container"]):
        problems.append("a command probe runs probe.command in container: both are needed")
    return problems


def main():
    probe_spec = probes.PROBE_SPEC.change(**PROBE_DEFAULTS)
    module = ArgumentSpec(dict(
        probe=dict(type="dict", required=True, options=probe_spec.options),
        container=dict(type="str"),
    )).merge(ENGINE_SPEC).create_module(supports_check_mode=True)
    p = dict(module.params["probe"], container=module.params["container"])
    problems = probe_problems(p)
    if problems:
        module.fail_json(msg="; ".join(problems), problems=problems)
    engine = engine_for_module(module) if p["container"] else None
    try:
        address = p["host"] or (address_of(module, engine, p) if p["type"] != "command" else None)
        probe = probes.probe_for(p, address, module.run_command, engine.exec_command if engine else None)
        progress = None
        if p["progress_command"]:
            progress = command_output(module, engine.exec_command(p["container"], p["progress_command"]))
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    started = time.time()
    result = probes.wait_ready(probe, retries=p["retries"], interval=p["interval"], timeout=p["timeout"],
                               stable_for=p["stable_for"], progress=progress, baseline=p["progress_baseline"])
    result = dict(result, changed=False, started_at=started, finished_at=time.time())
    if address:
        result["address"] = address
    if not result["ready"]:
        module.fail_json(msg="%s probe not ready after %d attempts in %.1f s: %s"
                         % (p["type"], result["attempts"], result["elapsed"], result["detail"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
