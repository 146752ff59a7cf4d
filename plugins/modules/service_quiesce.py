#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: service_quiesce
short_description: Bring a service to a quiet point before its checkpoint, or let it go again
version_added: 0.1.0
description:
  - Waits, with a bound, until a service is at a point where a checkpoint loses nothing a client
    would miss, and says how long that took.
  - V(postgres_idle) waits until no client session of the PostgreSQL server has a transaction open.
  - V(http_drain) asks the application to drain (a POST to O(path)), then waits until the JSON of
    O(active_path) reports O(active_key) at 0. With O(state=resumed) it POSTs O(resume_path).
  - V(connections_zero) waits until no client holds a TCP connection to O(port) of the container.
  - V(none) does nothing.
author:
  - stacklift developers (@stacklift)
options:
  method:
    description: How to quiesce.
    type: str
    required: true
    choices: [none, postgres_idle, http_drain, connections_zero]
  state:
    description: V(quiesced) quiesces; V(resumed) lets an V(http_drain) application take work again.
    type: str
    choices: [quiesced, resumed]
    default: quiesced
  container:
    description: The service's container.
    type: str
    required: true
  host:
    description: Address to reach the service at. Defaults to the container's address.
    type: str
  port:
    description: Port of the service. Defaults to 5432 for V(postgres_idle); required otherwise.
    type: int
  path:
    description: Drain hook of V(http_drain).
    type: str
    default: /admin/drain
  resume_path:
    description: Resume hook of V(http_drain).
    type: str
    default: /admin/resume
  active_path:
    description: Where V(http_drain) reads the requests in flight (JSON).
    type: str
    default: /stats
  active_key:
    description: Key of O(active_path)'s JSON that counts requests in flight.
    type: str
    default: active
  timeout:
    description: Seconds to wait at most.
    type: float
    default: 30
  interval:
    description: Seconds between checks.
    type: float
    default: 0.1
extends_documentation_fragment:
  - stacklift.migrate.engine.POSTGRES
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: Checks how busy the service is; asks nothing of it.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.container_fence
"""

EXAMPLES = r"""
- name: Let the shop finish its requests and take no new ones
  stacklift.migrate.service_quiesce:
    method: http_drain
    container: shop-app
    port: 8080

- name: Wait until no transaction is open
  stacklift.migrate.service_quiesce:
    method: postgres_idle
    container: shop-db
    timeout: 20
"""

RETURN = r"""
quiet:
  description: Whether the service reached its quiet point.
  returned: always
  type: bool
waited:
  description: Seconds it took.
  returned: always
  type: float
attempts:
  description: Checks made.
  returned: always
  type: int
detail:
  description: The last check's answer.
  returned: always
  type: str
started_at:
  description: Epoch time the quiesce began.
  returned: always
  type: float
finished_at:
  description: Epoch time it ended.
  returned: always
  type: float
"""

import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacklift.migrate.plugins.module_utils import quiesce
from ansible_collections.stacklift.migrate.plugins.module_utils.engine import (
    ENGINE_ARGUMENT_SPEC, EngineError, NotFound, container_address, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils.probes import wait_ready


def container_facts(engine, name):
    c = engine.container(name)
    return container_address(c), (c.get("State") or {}).get("Pid")


def read_tcp_tables(pid):
    def read():
        texts = []
        for table in ("tcp", "tcp6"):
            try:
                with open("/proc/%d/net/%s" % (pid, table)) as f:
                    texts.append(f.read())
            except (IOError, OSError):
                pass
        return texts
    return read


def main():
    argument_spec = dict(
        method=dict(type="str", required=True, choices=["none", "postgres_idle", "http_drain", "connections_zero"]),
        state=dict(type="str", default="quiesced", choices=["quiesced", "resumed"]),
        container=dict(type="str", required=True),
        host=dict(type="str"),
        port=dict(type="int"),
        path=dict(type="str", default="/admin/drain"),
        resume_path=dict(type="str", default="/admin/resume"),
        active_path=dict(type="str", default="/stats"),
        active_key=dict(type="str", default="active", no_log=False),
        postgres_user=dict(type="str", default="postgres"),
        postgres_db=dict(type="str", default="postgres"),
        timeout=dict(type="float", default=30),
        interval=dict(type="float", default=0.1),
    )
    argument_spec.update(ENGINE_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("method", "http_drain", ("port",)), ("method", "connections_zero", ("port",))])
    p = module.params
    started = time.time()
    result = dict(changed=False, quiet=True, waited=0.0, attempts=0, detail="nothing to do", started_at=started)
    if p["method"] == "none" or (p["state"] == "resumed" and p["method"] != "http_drain"):
        result["finished_at"] = time.time()
        module.exit_json(**result)
    engine = engine_for_module(module)
    try:
        address, pid = container_facts(engine, p["container"])
    except NotFound as e:
        module.fail_json(msg=e.msg)
    except EngineError as e:
        module.fail_json(**e.fail_kwargs())
    host = p["host"] or address
    if p["method"] == "http_drain" and not module.check_mode:
        hook = p["path"] if p["state"] == "quiesced" else p["resume_path"]
        try:
            status, _body = quiesce.http_call(host, p["port"], "POST", hook)
        except (socket.error, OSError) as e:
            module.fail_json(msg="%s hook %s:%s%s failed: %s" % (p["state"], host, p["port"], hook, e))
        if status >= 300:
            module.fail_json(msg="%s hook %s:%s%s answered %d" % (p["state"], host, p["port"], hook, status))
        result["changed"] = True
        if p["state"] == "resumed":
            result.update(detail="resumed", finished_at=time.time())
            module.exit_json(**result)
    if p["method"] == "postgres_idle":
        check = quiesce.postgres_idle_check(host, p["port"] or 5432, p["postgres_user"], p["postgres_db"])
    elif p["method"] == "http_drain":
        check = quiesce.http_drained_check(host, p["port"], p["active_path"], p["active_key"])
    else:
        check = quiesce.connections_zero_check(read_tcp_tables(pid), p["port"])
    if module.check_mode:
        quiet, detail = check()
        result.update(changed=p["method"] == "http_drain", quiet=quiet, detail=detail, attempts=1,
                      finished_at=time.time())
        module.exit_json(**result)
    waited = wait_ready(check, retries=10 ** 9, interval=p["interval"], timeout=p["timeout"])
    result.update(quiet=waited["ready"], waited=waited["elapsed"], attempts=waited["attempts"],
                  detail=waited["detail"], finished_at=time.time())
    if not waited["ready"]:
        module.fail_json(msg="%s did not quiesce (%s) in %.1f s: %s"
                         % (p["container"], p["method"], p["timeout"], waited["detail"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
