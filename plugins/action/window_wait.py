# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""window_wait on the controller: waits for a window's background call on the task's host over the
connection Ansible holds, shows its progress as it goes, and returns the call's own result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import (
    marker_path, note_body, note_command, note_path, run_archive_dir)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.progress import (
    NOTE_STAGES, STAGES, WAIT_SPEC, progress_line, stage_events, stage_result, service_states, wait_problem,
    would_wait)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import parse_poll, poll_command
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import lift_answers_command

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        dummy, p = self.validate_argument_spec(**WAIT_SPEC.validate_kwargs())
        job = p["job"]
        problem = wait_problem(p)
        if problem:
            return dict(result, failed=True, msg=problem)
        if self._task.check_mode:
            return dict(result, changed=False, msg=would_wait(p))
        if job.get("skipped"):
            return dict(result, skipped=True, msg="the call was skipped")
        if job.get("unreachable") or job.get("failed") or not job.get("ansible_job_id"):
            # the call did not start: its own result says why
            return dict(result, **{k: v for k, v in job.items() if not k.startswith("_ansible") and k != "item"})
        results_file = job.get("results_file")
        if not results_file or not results_file.startswith("/"):
            return dict(result, failed=True, msg="job has no results_file: give it the result of a task run with "
                        "async and poll 0")
        host = self._task.delegate_to or task_vars.get("inventory_hostname")
        run_id = p["run_id"]
        started = time.time()
        shown = started + p["progress_after"]
        rates = {}
        marker = marker_path(p["archive_dir"], p["stack"])
        stage, until = p["stage"], None
        if stage in NOTE_STAGES:
            # A target's call waits, fenced and ready, for the commit note (it lifts its fence and
            # serves); a source's call in a fleet's window holds its slot until either note.
            cmd = note_command(note_path(p["archive_dir"], p["stack"], stage), note_body(run_id))
            if stage == "commit" and p["side"] == "source":  # the traffic went to the target: no more answers
                cmd += " && { %s; }" % lift_answers_command(p["stack"])
            res = self._low_level_execute_command(cmd, sudoable=True)
            if res["rc"] != 0:
                return dict(result, failed=True, rc=res["rc"], stdout=res["stdout"], stderr=res["stderr"],
                            msg="cannot leave the %s note on %s: %s" % (stage, host, res["stderr"].strip()))
            if not p["wait"]:  # the caller waits later (stage served, or end), doing something else meanwhile
                return dict(result, changed=True, note=stage, ansible_job_id=job["ansible_job_id"])
        note, step = STAGES[p["side"]].get(stage, (None, None))
        if note:
            until = (note_path(p["archive_dir"], p["stack"], note), run_id)
        while True:
            # Each question waits on the host at most until the next line of progress is due.
            wait = min(max(shown - time.time(), 0.05), p["progress_every"], 2.0)
            cmd = poll_command(results_file, marker, run_archive_dir(p["archive_dir"], run_id) if run_id
                               else p["archive_dir"], wait=wait, until_note=until)
            # A host that stops answering raises AnsibleConnectionFailure here: the item is unreachable.
            res = self._low_level_execute_command(cmd, sudoable=True)
            if res["rc"] != 0:
                return dict(result, failed=True, rc=res["rc"], stdout=res["stdout"], stderr=res["stderr"],
                            ansible_job_id=job["ansible_job_id"],
                            msg="cannot ask %s about its window's call: %s" % (host, res["stderr"].strip()))
            try:
                call, records, parts, host_now = parse_poll(res["stdout"])
            except ValueError as e:
                return dict(result, failed=True, msg=str(e))
            now = time.time()
            if call is not None:
                call.pop("_ansible_suppress_tmpdir_delete", None)
                result.update(call)
                result.setdefault("ansible_job_id", job["ansible_job_id"])
                return result
            events = stage_events(p["services"], records, run_id, step) if step else None
            if events is not None:
                # a source's cut made: it goes on checkpointing; a target ready, fenced: it goes on, waiting for the
                # commit (stage=commit); or committed, serving: it goes on until its lazy memory is resident and its
                # archives are gone (stage=end)
                return dict(result, **stage_result(p, events, job))
            if now - started > p["timeout"]:
                return dict(result, failed=True, ansible_job_id=job["ansible_job_id"],
                            msg="the window's call on %s did not end within %d s (it may still run: its job is %s)"
                            % (host, p["timeout"], job["ansible_job_id"]))
            if now >= shown:
                states = service_states(p["side"], p["services"], records, run_id, parts, host_now)
                display.display(progress_line(p["stack"], host, p["side"], now - started, states, rates))
                shown = now + p["progress_every"]
