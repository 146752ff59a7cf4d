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
version_added: 0.2.0
description:
  - Keeps, on the controller (run it with C(delegate_to=localhost)), an append-only journal of a
    stack's migrations, C(JOURNAL_DIR/STACK.journal), each record fsynced before the task returns,
    and a lock, C(JOURNAL_DIR/STACK.lock), so that one run at a time works on a stack.
  - V(begin) takes the lock and starts a run. A lock held by a live run is refused, naming its
    holder. When the last run was left open by a controller that died (its process is gone), its lock
    is taken over and that run is resumed under its own ID (RV(previous) is its state), for the roles
    to finish or roll back before a new run begins.
  - V(record) appends records (the hosts' events, the commit intent). V(end) closes the run with its
    outcome and releases the lock.
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
    type: str
    choices: [begin, record, end, release, show]
    default: show
  run_id:
    description: The run (from V(begin)); required for V(record) and V(end).
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
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
  check_mode:
    support: full
    details: V(begin) in check mode reports the lock's holder and the open run, and takes nothing.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.stack_source
  - module: stacklift.migrate.stack_target
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
holder:
  description: With V(begin) refused, or V(show), who holds the lock.
  returned: when locked
  type: dict
  sample: {run: 20261128T101500-1a2b3c4d, pid: 4242, host: controller, since: "2026-11-28T10:15:00Z"}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacklift.migrate.plugins.module_utils.journal import (
    Journal, JournalError, Lock, LockHeld, fold, new_run_id)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stack=dict(type="str", required=True),
            journal_dir=dict(type="path", required=True),
            state=dict(type="str", default="show", choices=["begin", "record", "end", "release", "show"]),
            run_id=dict(type="str"),
            records=dict(type="list", elements="dict", default=[]),
            outcome=dict(type="str", choices=["committed", "rolled_back", "refused"]),
        ),
        required_if=[("state", "record", ("run_id",)), ("state", "release", ("run_id",)),
                     ("state", "end", ("run_id", "outcome"))],
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.join(p["journal_dir"], "%s.journal" % p["stack"])
    journal = Journal(path)
    lock = Lock(os.path.join(p["journal_dir"], "%s.lock" % p["stack"]))
    out = dict(path=path, previous=None)
    try:
        if p["state"] in ("show", "begin"):
            last = journal.last_run()
            previous = fold(journal.records(last)) if last else None
            if previous and previous["status"] != "open":
                previous = None
            out["previous"] = previous
            out["holder"] = lock.holder()
        if p["state"] == "show" or (p["state"] == "begin" and module.check_mode):
            last = journal.last_run()
            module.exit_json(changed=False, run_id=last, run=fold(journal.records(last)), **out)
        if p["state"] == "begin":
            # A run a dead controller left open is resumed under its own ID (the hosts' markers
            # know it by that ID), to be finished or rolled back before a new run begins.
            run_id = out["previous"]["run"] if out["previous"] else new_run_id()
            try:
                lock.acquire(run_id)
            except LockHeld as e:
                module.fail_json(msg="stack %s: %s" % (p["stack"], e), run_id=None, run={}, **dict(out, holder=e.holder))
            journal.append("resumed" if out["previous"] else "begin", run=run_id)
            out["holder"] = lock.holder()
        else:
            run_id = p["run_id"]
            held = lock.holder() or {}
            if held.get("run") != run_id:
                module.fail_json(msg="stack %s: run %s does not hold the lock (held by %s)"
                                 % (p["stack"], run_id, held.get("run") or "nobody"), run_id=run_id, run={}, **out)
            for rec in p["records"]:
                rec = dict(rec)
                step = rec.pop("step", None)
                if not step:
                    module.fail_json(msg="every record needs a step: %r" % (rec,), run_id=run_id, run={}, **out)
                rec.pop("run", None)
                journal.append(step, run=run_id, **rec)
            if p["state"] == "end":
                journal.append(p["outcome"], run=run_id)
                journal.append("end", run=run_id)
            if p["state"] in ("end", "release"):
                lock.release(run_id)
    except (JournalError, IOError, OSError) as e:
        module.fail_json(msg="journal %s: %s" % (path, e), run_id=p["run_id"], run={}, **out)
    module.exit_json(changed=True, run_id=run_id, run=fold(journal.records(run_id)), **out)


if __name__ == "__main__":
    main()
