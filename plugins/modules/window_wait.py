#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: window_wait
short_description: Wait for a migration window's background call on a host, showing its progress
version_added: 0.2.0
description:
  - Waits for a call of M(stacklift.migrate.window_source) or M(stacklift.migrate.window_target) started
    with C(async) and a C(poll) of 0 on the task's host, and returns that call's own result, as if it had
    run in the foreground (a failed call fails this task, with its message and events).
  - Its action plugin asks the host over the connection Ansible already holds; each question waits
    on the host until the call has ended, or for O(progress_every) seconds, so the end is seen within
    about 50 ms, without a module started per question.
  - Once the call has run O(progress_after) seconds, a line of progress every O(progress_every)
    seconds says where each service is (quiesced, fenced, checkpointed, sent; receiving with its
    bytes and rate, restored and probing, ready), read from the host's marker journal and the
    transfers' part files. AWX shows these lines in the job's output as they come.
author:
  - stacklift developers (@stacklift)
options:
  job:
    description: The registered result of the call's start (one item of a looped task), with C(ansible_job_id) and C(results_file).
    type: dict
    required: true
  stack:
    description: Name of the stack (it names the host's marker journal).
    type: str
    required: true
  run_id:
    description: The migration run (the progress reads its records; else the marker's last run's).
    type: str
  side:
    description: Which call it is, V(source) (window_source) or V(target) (window_target).
    type: str
    required: true
    choices: [source, target]
  services:
    description: The stack's services on this host (C(name), C(container)), for the progress lines.
    type: list
    elements: dict
    default: []
  archive_dir:
    description: Where the archives and the host's marker journal are.
    type: path
    default: /var/lib/stacklift/checkpoints
  timeout:
    description: Seconds to wait before giving up (the call may still run then).
    type: float
    default: 360
  progress_after:
    description: Seconds after which the progress lines start (a short window shows none).
    type: float
    default: 3
  progress_every:
    description: Seconds between progress lines, and the longest a question to the host waits.
    type: float
    default: 2
  stage:
    description:
      - V(end) waits for the call to end and returns its result.
      - "V(cut), for a M(stacklift.migrate.window_source) call, returns as soon as every service of O(services) is
        fenced there and its address answered (the cut is made; the call goes on checkpointing and sending), with
        those steps as RV(events): the traffic may go to the target from here, whose fence answers it until the
        commit."
      - "V(ready), for a M(stacklift.migrate.window_target) call started with
        O(stacklift.migrate.window_target#module:await_commit=true), returns as soon as every service of
        O(services) is restored and ready here (the call goes on, fenced, waiting for the commit), with
        those steps as RV(events)."
      - "V(commit) first leaves the commit note of O(run_id) that such a call waits for (one shell
        command, no module), then waits until the call has lifted its fence and the copies serve (with
        O(side=target), it returns then, with those steps as RV(events): the call goes on while the memory of
        services restored lazily fills in, and a later V(end) collects its result), or for the call's end.
        A M(stacklift.migrate.window_source) call holding a window slot
        (O(stacklift.migrate.window_source#module:windows)) waits for the same note (or V(abort)'s),
        then gives its slot back and ends. With O(side=source) it also lifts the stack's host fence there, which
        answered the clients of the containers it checkpointed (ICMP host-unreachable) until the traffic went to
        the target."
      - "V(served), with O(side=target), waits (leaving no note) for what V(commit) waits for after its note: the
        copies serve, their fence lifted. With V(commit) and O(wait=false) before it, the controller does
        something else in between, such as the traffic switch while the targets lift their fences."
      - V(abort) leaves the abort note instead (a rollback), then waits for the call's end.
    type: str
    choices: [end, cut, ready, commit, served, abort]
    default: end
  wait:
    description:
      - With V(false), O(stage=commit) or V(abort) leaves its note (and, with O(side=source) and V(commit), lifts
        the host fence's answers) and returns at once, with RV(note); a later task waits (O(stage=served), or
        V(end)).
    type: bool
    default: true
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Leaves no note and waits for nothing; says which stage of the call it would wait for.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.window_source
  - module: stacklift.migrate.window_target
"""

EXAMPLES = r"""
- name: Restore on the targets in the background
  stacklift.migrate.window_target:
    stack: shop
    run_id: "{{ run_id }}"
    services: "{{ plan.services | selectattr('target', 'equalto', item) | list }}"
    tiers: "{{ plan.restore_order }}"
  delegate_to: "{{ item }}"
  loop: "{{ plan.target_hosts }}"
  async: 360
  poll: 0
  register: target_jobs

- name: Wait for them, showing their progress
  stacklift.migrate.window_wait:
    job: "{{ item }}"
    stack: shop
    side: target
    services: "{{ plan.services | selectattr('target', 'equalto', item.item) | list }}"
  delegate_to: "{{ item.item }}"
  loop: "{{ target_jobs.results }}"
  loop_control:
    label: "{{ item.item }}"
  register: target_results
"""

RETURN = r"""
events:
  description: The call's own result is returned as it is; for window_source and window_target, the steps they took.
  returned: when the call ended
  type: list
  elements: dict
  sample: [{"step": "restored", "service": "db", "t": 1795903863.4}]
cut:
  description: With O(stage=cut), that every service here is fenced and the call goes on (checkpointing, sending).
  returned: stage=cut, before the call ended
  type: bool
  sample: true
ready:
  description: With O(stage=ready), that every service here is ready and the call waits for the commit.
  returned: stage=ready, before the call ended
  type: bool
  sample: true
committed:
  description: With O(stage=commit) or V(served), that every service here serves and the call goes on (its lazy memory
    filling).
  returned: stage=commit or stage=served, before the call ended
  type: bool
  sample: true
note:
  description: With O(wait=false), the note left.
  returned: wait=false
  type: str
  sample: commit
ansible_job_id:
  description: The background job waited for.
  returned: always
  type: str
  sample: "j350816237149.12345"
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import read_note, write_note
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import lift_answers_command
from ansible_collections.stacklift.migrate.plugins.module_utils._window.progress import (
    NOTE_STAGES, STAGES, WAIT_SPEC, local_wait, stage_result, wait_problem, would_wait)


def main():
    # The action plugin of the same name waits from the controller, with progress; run on its own on
    # the host, this waits there, without it.
    module = WAIT_SPEC.create_module(supports_check_mode=True)
    import time
    p = module.params
    problem = wait_problem(p)
    if problem:
        module.fail_json(msg=problem)
    if module.check_mode:
        module.exit_json(changed=False, msg=would_wait(p))
    job = p["job"]
    if not job.get("results_file"):
        module.fail_json(msg="job has no results_file: give it the result of a task run with async and poll 0")
    if p["stage"] in NOTE_STAGES:
        write_note(p["archive_dir"], p["stack"], p["stage"], p["run_id"])
    if p["stage"] == "commit" and p["side"] == "source":  # the traffic went to the target: no more answers
        module.run_command(["/bin/sh", "-c", lift_answers_command(p["stack"])])
    if not p["wait"]:
        module.exit_json(changed=True, note=p["stage"], ansible_job_id=job.get("ansible_job_id"))
    until = None
    note, step = STAGES[p["side"]].get(p["stage"], (None, None))
    if note:
        def until():
            return read_note(p["archive_dir"], p["stack"], note, p["run_id"]) is not None
    result = local_wait(job["results_file"], p["timeout"], time.sleep, time.time, until=until)
    if result == {}:
        module.exit_json(**stage_result(p, [], job))
    if result is None:
        module.fail_json(msg="the window's call did not end within %d s" % module.params["timeout"],
                         ansible_job_id=job.get("ansible_job_id"))
    if result.get("failed"):
        module.fail_json(**dict(result, msg=result.get("msg") or "the window's call failed"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
