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
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.POSTGRES
attributes:
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
  sample: true
waited:
  description: Seconds it took.
  returned: always
  type: float
  sample: 0.3
attempts:
  description: Checks made.
  returned: always
  type: int
  sample: 4
detail:
  description: The last check's answer.
  returned: always
  type: str
  sample: "0 transactions open"
started_at:
  description: Epoch time the quiesce began.
  returned: always
  type: float
  sample: 1764324915.412
finished_at:
  description: Epoch time it ended.
  returned: always
  type: float
  sample: 1764324915.712
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._services import quiesce
from ansible_collections.stacklift.migrate.plugins.module_utils._services.probes import below_minimums
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import container_address
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    spec = quiesce.QUIESCE_SPEC.change(
        method=dict(required=True), path=dict(default="/admin/drain"), resume_path=dict(default="/admin/resume"),
        active_path=dict(default="/stats"), active_key=dict(default="active"), postgres_user=dict(default="postgres"),
        postgres_db=dict(default="postgres"), timeout=dict(default=30), interval=dict(default=0.1),
    ).merge(ENGINE_SPEC, state=dict(type="str", default="quiesced", choices=["quiesced", "resumed"]),
            container=dict(type="str", required=True), host=dict(type="str"))
    module = spec.create_module(supports_check_mode=True)
    p = module.params
    problems = below_minimums(p, quiesce.QUIESCE_MINIMUMS)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if p["method"] == "none" or (p["state"] == "resumed" and p["method"] != "http_drain"):
        module.exit_json(**quiesce.quiesce_service(None, None, p, p["state"]))
    engine = engine_for_module(module)
    try:
        c = engine.container(p["container"])
        result = quiesce.quiesce_service(p["host"] or container_address(c), (c.get("State") or {}).get("Pid"), p,
                                         p["state"], check_mode=module.check_mode)
    except StackliftError as e:
        failure = e.fail_kwargs()
        if isinstance(e, quiesce.QuiesceError) and not e.msg.startswith(p["state"]):
            failure["msg"] = "%s %s" % (p["container"], e.msg)
        module.fail_json(**failure)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
