#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: window_target
short_description: A target host's part of a stack migration, in one call
version_added: 0.1.0
description:
  - Runs on a target host of a stack migration and does that host's whole part of the window.
  - V(restored) raises a fence on the host (an nftables table whose forward chain drops every
    packet from or to the restored containers' addresses), waits for each archive that
    C(stacklift.migrate.window_source) sends, checks its sha256, restores it, and probes it; tier by
    tier, the services of a tier in parallel, each tier ready before the next starts. The copies
    here serve nobody until the commit, so a rollback, or a target that vanishes, cannot make a
    service serve twice.
  - V(serving) is the commit; every service here must be ready, then the fence goes and the copies
    serve; then the archives received go, unless O(keep_archives). With O(commit=true), V(restored)
    commits by itself once all is ready.
  - With O(await_commit=true), V(restored) then leaves a C(STACK.ready) note in O(archive_dir) and
    waits, fenced, for the controller's C(STACK.commit) note of O(run_id) (M(stacklift.migrate.window_wait)
    with O(stacklift.migrate.window_wait#module:stage=commit) leaves it), and commits itself; so the
    commit starts no module inside the stack's pause. An abort note, or none within O(wait_timeout),
    ends it with the copies fenced.
  - V(absent) is the rollback on the target; the copies restored by O(run_id), still fenced, are
    removed and confirmed gone, then the archives received and the fence. It refuses once the
    stack was committed here, and it never removes a running container another run made. A call of
    O(run_id) still waiting here (for its archives, or for the commit) is told to stop first; V(serving)
    tells such a call that the stack is committed, and it commits.
  - Every step goes to the host's marker journal (O(archive_dir)/STACK.journal) the moment it is done.
author:
  - stacklift developers (@stacklift)
requirements:
  - nft on the host
options:
  state:
    description: V(restored) (fenced and ready), V(serving) (committed), V(absent) (rolled back here).
    type: str
    choices: [restored, serving, absent]
    default: restored
  commit:
    description: With V(restored), commit as soon as every service here is ready.
    type: bool
    default: false
  await_commit:
    description: With V(restored), once every service here is ready, wait for the controller's commit note, then commit.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait, in all, for the archives to arrive, from the source's C(STACK.window) note (it has its
        window slot, and quiesces and fences); with O(await_commit), as long again for the commit.
    type: float
    default: 300
  windows_timeout:
    description:
      - Seconds the source may wait for a window slot (its O(stacklift.migrate.window_source#module:windows_timeout))
        before it says it has its window; until it does, the wait for the archives is this much longer.
    type: float
    default: 0
  probe_timeout:
    description: Seconds a service may take to be ready, when its probe sets no C(timeout).
    type: float
    default: 60
  stable_for:
    description: Seconds a service must stay ready, when its probe sets no C(stable_for).
    type: float
    default: 0
  force:
    description: With V(absent), remove the copies even after a commit, or containers of another run.
    type: bool
    default: false
  keep_archives:
    description: With V(serving) (or O(commit)), keep the archives received here.
    type: bool
    default: false
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.ENCRYPTION
  - stacklift.migrate.engine.WINDOW
attributes:
  check_mode:
    support: full
    details: Changes nothing and returns RV(would), what the call would do, in order.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.window_source
  - module: stacklift.migrate.migration_journal
"""

EXAMPLES = r"""
- name: Restore node2's services as their archives arrive, and commit once all are ready
  stacklift.migrate.window_target:
    stack: shop
    run_id: "{{ journal.run_id }}"
    services: "{{ plan.services | selectattr('target', 'equalto', 'node2') | list }}"
    tiers: "{{ plan.restore_order }}"
    commit: true

- name: Roll back on the target
  stacklift.migrate.window_target:
    stack: shop
    run_id: "{{ journal.run_id }}"
    services: "{{ plan.services | selectattr('target', 'equalto', 'node2') | list }}"
    tiers: "{{ plan.restore_order }}"
    state: absent
"""

RETURN = r"""
would:
  description: In check mode, what the call would do, in order.
  returned: in check mode
  type: list
  elements: str
  sample: ["tier 1: restore db (container shop-db) from its archive in /var/lib/stacklift, probe it, hold it fenced"]
events:
  description: What this call did, step by step, as recorded in the host's marker journal.
  returned: always
  type: list
  elements: dict
  sample: [{step: restored, service: db, t: 1764241201.3}, {step: ready, service: db, t: 1764241201.5}]
committed:
  description: Whether the stack is committed on this host (its fence lifted, its copies serving).
  returned: always
  type: bool
  sample: true
marker:
  description: Path of the host's marker journal.
  returned: always
  type: str
  sample: "/var/lib/stacklift/checkpoints/shop.journal"
problems:
  description: Every reason the call failed.
  returned: failure
  type: list
  sample: ["cache: not ready within 60 s (connection refused)"]
  elements: str
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.module import (
    WINDOW_SPEC, window_host, window_services, run_window, window_command_timeout)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import require_for
from ansible_collections.stacklift.migrate.plugins.module_utils._window.target import TargetWindow


def would(p, services):
    """What the call would do, in order (check mode)."""
    named = ["%s (container %s)" % (n, services[n]["container"]) for tier in p["tiers"] for n in tier]
    if p["state"] == "absent":
        return ["remove the copy of %s fenced here, if any" % s for s in reversed(named)]
    if p["state"] == "serving":
        return ["lift the fence of %s: it serves here" % s for s in named]
    out = ["tier %d: restore %s (container %s) from its archive in %s, probe it, hold it fenced"
           % (i, n, services[n]["container"], p["archive_dir"]) for i, tier in enumerate(p["tiers"], 1) for n in tier]
    return out + ["lift the fences and serve" if p["commit"] else "wait for the commit note, then serve"
                  if p["await_commit"] else "stay fenced, for the commit"]


def main():
    spec = WINDOW_SPEC.merge(
        state=dict(type="str", default="restored", choices=["restored", "serving", "absent"]),
        commit=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=300),
        windows_timeout=dict(type="float", default=0),
        probe_timeout=dict(type="float", default=60),
        stable_for=dict(type="float", default=0),
        force=dict(type="bool", default=False),
        keep_archives=dict(type="bool", default=False),
        await_commit=dict(type="bool", default=False),
    )
    module = spec.create_module(supports_check_mode=True)
    p = module.params
    services = window_services(module)
    if module.check_mode:
        module.exit_json(changed=True, would=would(p, services), events=[])
    host = window_host(module, engine_for_module(module, command_timeout=window_command_timeout(p["wait_timeout"])))
    window = TargetWindow(host, p["stack"], p["run_id"], p["archive_dir"], services, p["tiers"],
                          wait_timeout=p["wait_timeout"], probe_timeout=p["probe_timeout"], stable_for=p["stable_for"],
                          windows_timeout=p["windows_timeout"])
    window.encryption_key = p["encryption_key"]
    require_for(module)
    keep = p["keep_archives"]
    call = {"restored": lambda: window.restored(commit=p["commit"], keep_archives=keep, await_commit=p["await_commit"]),
            "serving": lambda: window.serving(keep_archives=keep), "absent": lambda: window.absent(force=p["force"])}[p["state"]]
    # a rollback does not wait behind a call still waiting here, and a commit is done by it
    tell = {"absent": ("abort", "the migration is rolled back"), "serving": ("commit", None)}.get(p["state"])
    run_window(module, window, call, timeout=p["wait_timeout"] + p["windows_timeout"] + 60, tell=tell)


if __name__ == "__main__":
    main()
