#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: window_source
short_description: A source host's part of a stack migration, in one call
version_added: 0.1.0
description:
  - Runs on a source host of a stack migration and does that host's whole part of the window
    without the controller in between, so the stack's pause is the work itself.
  - V(checkpointed) quiesces the services that say how (C(quiesce) of a service, as in
    C(stacklift.migrate.service_quiesce); dependents first), then fences every service of the host at one moment (an nftables table in each
    container's network namespace), then checkpoints them tier by tier, the services of a tier in
    parallel. Each archive is fsynced before it counts, recorded in the host's marker journal
    (O(archive_dir)/STACK.journal), and sent to its target at once, over SSH, while the next tier
    is checkpointed. The engine keeps its checkpoint too, so a rollback needs no archive.
  - A service whose memory is lazy (C(memory) V(lazy), or V(auto) from 256 MiB) has its checkpoint split by
    the runtime wrapper (M(stacklift.migrate.lazy_runtime)). Its lazy pages stay on this host, and the call
    serves them to the target's C(lazy-pages) daemon through a port it forwards over the SSH connection to
    the target. After the commit it ends only once the target has taken every page.
  - V(running) is the rollback on the source; checkpointed containers are restored in place,
    dependencies first, with their TCP connections, then every fence is lifted.
  - V(absent) is the clean-up after the commit; the stopped source containers and their archives go.
    A running container is never removed.
  - Idempotent for a run (O(run_id)); what the marker records as done is not done again.
author:
  - stacklift developers (@stacklift)
requirements:
  - paramiko (for V(checkpointed) with targets)
  - nsenter and nft on the host
options:
  target_addresses:
    description:
      - The address this host reaches each target at, by the target's name (C(target) of a service);
        C(user@address:port) gives the user and port too (the C(stacklift.migrate.ssh_endpoint) filter makes it),
        after any jump hosts, each ended by a comma.
    type: dict
  state:
    description: V(checkpointed) (fence, checkpoint, send), V(running) (rollback), V(absent) (clean-up).
    type: str
    choices: [checkpointed, running, absent]
    default: checkpointed
  compression:
    description: Compression of the archives.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  send:
    description: Send each archive to its target (V(false) leaves them here).
    type: bool
    default: true
  quiesce_timeout:
    description: Seconds a service may take to quiesce, when its C(quiesce) sets no C(timeout).
    type: float
    default: 30
  windows:
    description:
      - With V(checkpointed), how many stacks may be in their window at once on this host (a fleet's
        drain); 0 for no limit. The call takes one of the host's window slots before it quiesces, and
        after its last archive is sent it holds the slot until the stack is committed, or rolled back
        (the abort note), or for O(windows_timeout); so the next stack freezes once this one serves, and
        no two stacks' checkpoints and restores compete.
      - The commit is seen on the targets themselves, over the SSH connections that carried the archives
        (each target's committed record, left as it lifts its fence), so the slot goes back the moment the
        stack serves; the commit note that M(stacklift.migrate.window_wait) leaves here with
        O(stacklift.migrate.window_wait#module:stage=commit) also ends the wait, if the targets cannot be asked.
      - A slot is a lock file in C(/run/stacklift/windows/) (one set per host) that the call holds,
        given back by the kernel however the call ends.
    type: int
    default: 0
  windows_timeout:
    description: With O(windows), seconds to wait for a slot before failing (nothing touched then).
    type: float
    default: 300
  keep_archives:
    description: With V(absent), keep the archives.
    type: bool
    default: false
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.ENCRYPTION
  - stacklift.migrate.engine.WINDOW
  - stacklift.migrate.engine.SSH_CONNECTION
attributes:
  check_mode:
    support: partial
    details: Checks what would refuse and changes nothing.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.window_target
  - module: stacklift.migrate.migration_journal
"""

EXAMPLES = r"""
- name: Fence, checkpoint and send node1's services (started async; the target waits for them)
  stacklift.migrate.window_source:
    stack: shop
    run_id: "{{ journal.run_id }}"
    services: "{{ plan.services | selectattr('source', 'equalto', 'node1') | list }}"
    tiers: "{{ plan.checkpoint_order }}"
    key_file: /root/.ssh/id_ed25519
    host_key_checking: strict
  async: 600
  poll: 0

- name: Roll back on the source
  stacklift.migrate.window_source:
    stack: shop
    run_id: "{{ journal.run_id }}"
    services: "{{ plan.services | selectattr('source', 'equalto', 'node1') | list }}"
    tiers: "{{ plan.restore_order }}"
    state: running
"""

RETURN = r"""
events:
  description: What this call did, step by step, as recorded in the host's marker journal.
  returned: always
  type: list
  elements: dict
  sample: [{step: fenced, service: db, t: 1764241200.1}, {step: checkpointed, service: db, sha256: "ab12..."}]
marker:
  description: Path of the host's marker journal.
  returned: always
  type: str
  sample: /var/lib/stacklift/checkpoints/shop.journal
problems:
  description: Every reason the call failed.
  returned: failure
  type: list
  sample: ["shop-db: the container is not running"]
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stacklift.migrate.plugins.module_utils._transport import ssh as _ssh
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.module import (
    WINDOW_SPEC, window_host, window_services, run_window, window_command_timeout)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import require_for
from ansible_collections.stacklift.migrate.plugins.module_utils._window.source import SourceWindow
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import marker_path
from ansible_collections.stacklift.migrate.plugins.module_utils._window.sender import Sender


def main():
    spec = WINDOW_SPEC.merge(
        state=dict(type="str", default="checkpointed", choices=["checkpointed", "running", "absent"]),
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
        send=dict(type="bool", default=True),
        keep_archives=dict(type="bool", default=False),
        target_addresses=dict(type="dict"),
        quiesce_timeout=dict(type="float", default=30),
        windows=dict(type="int", default=0),
        windows_timeout=dict(type="float", default=300),
    ).merge(_ssh.SSH_SPEC.without("target_host"))
    module = spec.create_module(supports_check_mode=True)
    p = module.params
    services = window_services(module)
    state = p["state"]
    sender = None
    if state == "checkpointed" and p["send"]:
        if not _ssh.HAS_PARAMIKO:
            module.fail_json(msg=missing_required_lib("paramiko"), exception=_ssh.PARAMIKO_IMPORT_ERROR)
        targets = {n: (p["target_addresses"] or {}).get(s.get("target")) or s.get("target")
                   for n, s in services.items()}
        lacking = sorted(n for n, a in targets.items() if not a)
        if lacking:
            module.fail_json(msg="services without a target: %s" % ", ".join(lacking))
        sender = Sender(p, targets, p["run_id"], p["stack"], p["archive_dir"])
    # an engine command that hangs (a checkpoint) ends in time for the targets to be told (their wait is as long)
    engine = engine_for_module(module, command_timeout=window_command_timeout(p["windows_timeout"]))
    window = SourceWindow(window_host(module, engine), p["stack"], p["run_id"], p["archive_dir"], services,
                          p["tiers"], sender=sender, compression=p["compression"], quiesce_timeout=p["quiesce_timeout"],
                          windows=p["windows"], windows_timeout=p["windows_timeout"])
    window.encryption_key = p["encryption_key"]
    require_for(module)
    if module.check_mode:
        problems = window.check()[0] if state == "checkpointed" else []
        if problems:
            module.fail_json(msg="; ".join(problems), problems=problems, marker=marker_path(p["archive_dir"], p["stack"]))
        module.exit_json(changed=True, events=[], marker=marker_path(p["archive_dir"], p["stack"]))
    call = {"checkpointed": window.checkpointed, "running": window.running,
            "absent": lambda: window.absent(keep_archives=p["keep_archives"])}[state]
    # the rollback, or the clean-up after the commit, frees a call still holding the window slot
    tell = {"running": ("abort", "the migration is rolled back"), "absent": ("commit", None)}.get(state)
    run_window(module, window, call, cleanup=sender.close if sender else None, tell=tell)


if __name__ == "__main__":
    main()
