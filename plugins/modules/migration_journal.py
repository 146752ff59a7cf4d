#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migration_journal
short_description: The controller's journal of a stack migration, and its lock
version_added: 0.1.0
description:
  - Keeps, on the controller (its action plugin runs there, whatever the task's host), an append-only journal of a
    stack's migrations, C(JOURNAL_DIR/STACK.journal), each record fsynced before the task returns,
    and a lock, C(JOURNAL_DIR/STACK.lock), so that one run at a time works on a stack.
  - V(begin) takes the lock and starts a run. A lock held by a live run is refused, naming its
    holder. When the last run was left open by a controller that died (its process is gone), its lock
    is taken over and that run is resumed under its own ID (RV(previous) is its state), for the roles
    to finish or roll back before a new run begins.
  - V(record) appends records (the hosts' events, the commit intent). V(end) closes the run with its
    outcome and releases the lock.
  - The lock names its controller (host, pid) and holds a lease, renewed by a process of its own every
    30 s while the controller lives. On the controller's host a holder is gone when its process is; from
    another host (each AWX job runs in a pod with a hostname of its own) when its lease has run out, 90 s
    after a cancelled or killed job. Taking, breaking and renewing the lock happen under a guard
    (C(STACK.lock.guard), flock), so two controllers breaking one stale lock never both hold it.
  - V(break) removes the lock of O(run_id) by hand, after checking that its holder is gone (its process,
    or its lease); it refuses a live holder, and records C(lock_broken) in the journal.
author:
  - stacklift developers (@stacklift)
options:
  stack:
    description: Name of the stack.
    type: str
    required: true
  journal_dir:
    description: Directory of the journals on the controller.
    type: path
    required: true
  state:
    description:
      - V(begin), V(record), V(end), V(show) (read only), or V(release), which gives the lock up and
        leaves the run open, for the next run to finish (a rollback that could not reach a target).
      - V(break) removes the lock of O(run_id) once its holder is gone; the run stays open, for the next
        run to finish or roll back.
    type: str
    choices: [begin, record, end, release, break, show]
    default: show
  run_id:
    description: The run (from V(begin)); required for V(record), V(end), V(release) and V(break).
    type: str
  records:
    description: Records to append, each a dict with at least C(step).
    type: list
    elements: dict
    default: []
  outcome:
    description: With V(end), how the run ended (V(refused) when the preflight found it could not start).
    type: str
    choices: [committed, rolled_back, refused]
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: V(begin) in check mode reports the lock's holder and the open run, and takes nothing.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.window_source
  - module: stacklift.migrate.window_target
"""

EXAMPLES = r"""
- name: Take the stack's lock and start the run
  stacklift.migrate.migration_journal:
    stack: shop
    journal_dir: /var/lib/stacklift/journal
    state: begin
  delegate_to: localhost
  register: journal

- name: Close the run
  stacklift.migrate.migration_journal:
    stack: shop
    journal_dir: /var/lib/stacklift/journal
    state: end
    run_id: "{{ journal.run_id }}"
    outcome: committed
  delegate_to: localhost

# A cancelled AWX job left the stack locked: its lease runs out 90 s later. Break it by hand, checked.
- name: Break the lock of a run whose controller is gone
  stacklift.migrate.migration_journal:
    stack: shop
    journal_dir: /var/lib/stacklift/journal
    state: break
    run_id: 20261128T101500-1a2b3c4d
  delegate_to: localhost
"""

RETURN = r"""
run_id:
  description: The run this call worked on.
  returned: always
  type: str
  sample: 20261128T101500-1a2b3c4d
path:
  description: Path of the journal.
  returned: always
  type: str
  sample: /var/lib/stacklift/journal/shop.journal
run:
  description: The state of the run, folded from its records (status, run steps, services' steps).
  returned: always
  type: dict
  sample: {status: open, steps: [begin], committing: false, services: {}}
previous:
  description: The run a dead controller left open, folded (resumed by V(begin)); null when there is none.
  returned: always
  type: dict
  sample:
    run: 20261128T094002-9e8d7c6b
    steps:
    - begin
    services:
      db:
        checkpointed:
          step: checkpointed
          service: db
          run: 20261128T094002-9e8d7c6b
    status: open
    committing: false
holder:
  description: With V(begin), V(show), or V(break) refused, who holds the lock, and until when its lease runs (epoch seconds).
  returned: when locked
  type: dict
  sample: {run: 20261128T101500-1a2b3c4d, pid: 4242, host: controller, since: "2026-11-28T10:15:00Z", expires: 1764324990.5}
lease_renewer:
  description: With V(begin), the pid of the process that renews the lock's lease while the controller lives.
  returned: when the lock was taken
  type: int
  sample: 4250
journal_mount_point:
  description:
    - With V(begin), the mount point the journal lies on. In an AWX job's container, C(/) means the journal goes
      with the job (the migrate_stack role warns then).
  returned: when the lock was taken
  type: str
  sample: /var/lib/awx/stacklift
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import (
    JOURNAL_SPEC, journal_task)


def main():
    # The action plugin of the same name does this on the controller without starting a module;
    # this serves ansible-doc, and anyone running the module on its own.
    module = JOURNAL_SPEC.create_module(supports_check_mode=True)
    failed, result = journal_task(module.params, check_mode=module.check_mode)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
