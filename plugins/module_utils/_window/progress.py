# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting for a window's background call on a host, and what it shows meanwhile.

The window's calls (window_source, window_target) run in the background (Ansible's async). The
wait (the window_wait action) asks the host, over the connection Ansible already holds, one short
question at a time: a shell loop on the host that returns as soon as the call has ended, or after
a couple of seconds with what its marker journal and the transfers' part files say; so the
controller learns of the end within about 50 ms, and a long transfer or probe shows its bytes and
seconds as they go.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "WAIT_SPEC", "TARGET_STEPS", "SOURCE_STEPS", "STAGES", "STEP_WORDS", "stage_events", "service_states", "progress_line", "local_wait",
    "would_wait", "wait_problem", "stage_result", "NOTE_STAGES",
]

import json
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec

WAIT_SPEC = ArgumentSpec(dict(
    job=dict(type="dict", required=True),
    stack=dict(type="str", required=True),
    run_id=dict(type="str"),
    side=dict(type="str", required=True, choices=["source", "target"]),
    services=dict(type="list", elements="dict", default=[]),
    archive_dir=dict(type="path", default="/var/lib/stacklift/checkpoints"),
    timeout=dict(type="float", default=360),
    progress_after=dict(type="float", default=3),
    progress_every=dict(type="float", default=2),
    stage=dict(type="str", default="end", choices=["end", "cut", "ready", "commit", "served", "abort"]),
    wait=dict(type="bool", default=True),
))
TARGET_STEPS = ("restored", "ready", "committed")
SOURCE_STEPS = ("quiesced", "fenced")
# A call goes on after these stages: {side: {stage: (the note it leaves then, the step each service reached)}}.
# A source's cut: every service fenced, its address answered, checkpoints under way. A target's ready: restored and
# ready, fenced, waiting for the commit; commit (its note left) or served (left before): serving, its lazy memory
# still filling in.
STAGES = {
    "source": {"cut": ("cut", "fenced")},
    "target": {"ready": ("ready", "ready"), "commit": ("served", "committed"), "served": ("served", "committed")},
}
NOTE_STAGES = ("commit", "abort")

# Each side's steps, the latest first, and what a service is doing after each (%s: for how long).
STEP_WORDS = {
    "source": [("sent", "sent"), ("checkpointed", "checkpointed, sending for %s"),
               ("fenced", "fenced, checkpointing for %s"), ("quiesced", "quiesced")],
    "target": [("ready", "ready"), ("restored", "restored, probing for %s")],
}


def stage_events(services, records, run_id, step="ready"):
    """The records of RUN_ID that say each of SERVICES (on this target) reached STEP ("ready": restored and
    ready, fenced; "committed": serving), as the call's events; None while one has not."""
    names = set(s.get("name") for s in services)
    steps = TARGET_STEPS if step in TARGET_STEPS else SOURCE_STEPS
    mine = [r for r in records if r.get("run") == run_id and r.get("service") in names and r.get("step") in steps]
    if not names or set(r["service"] for r in mine if r["step"] == step) != names:
        return None
    return mine


def service_states(side, services, records, run_id, parts, now=None):
    """{service: (words, bytes in transfer or None)} from the marker's records of RUN_ID (else of its
    last run), the part files and the host's clock NOW."""
    if not run_id and records:
        run_id = records[-1].get("run")
    done = {}
    for rec in records:
        if rec.get("run") == run_id and rec.get("service"):
            done.setdefault(rec["service"], {})[rec.get("step")] = rec.get("t")
    out = {}
    for svc in services:
        name = svc.get("name")
        steps = done.get(name, {})
        words = None
        for step, template in STEP_WORDS[side]:
            if step in steps:
                since = now - steps[step] if now is not None and steps[step] is not None else None
                words = template % ("%.1f s" % max(0.0, since)) if "%s" in template and since is not None \
                    else template.replace(" for %s", "")
                break
        receiving = None
        if side == "target" and words is None:
            container = svc.get("container", name)
            got = [n for n in parts if n.startswith(".%s." % container)]
            if any(n.startswith(container + ".tar") for n in parts):
                words = "arrived, restoring"
            elif got:
                receiving = sum(parts[n] for n in got)
                words = "receiving"
        out[name] = (words or "waiting", receiving)
    return out


def progress_line(stack, host, side, elapsed, states, last=None):
    """One line of progress; LAST is the previous call's {service: (bytes, elapsed)}, for rates, and is
    updated in place."""
    last = {} if last is None else last
    bits = []
    for name in sorted(states):
        words, receiving = states[name]
        if receiving is not None:
            rate = ""
            before = last.get(name)
            if before and elapsed > before[1] and receiving >= before[0]:
                rate = ", %.1f MB/s" % ((receiving - before[0]) / (elapsed - before[1]) / 1e6)
            last[name] = (receiving, elapsed)
            words = "receiving %.1f MB%s" % (receiving / 1e6, rate)
        bits.append("%s %s" % (name, words))
    return "%s on %s (%s), %.1f s: %s" % (stack, host, side, elapsed, "; ".join(bits) or "working")


def local_wait(results_file, timeout, sleep, clock, until=None):
    """Wait on this host for RESULTS_FILE to hold an ended call's results (the module run on its own),
    or for UNTIL() to be true (then {})."""
    deadline = clock() + timeout
    while clock() < deadline:
        if until is not None and until():
            return {}
        try:
            with open(results_file) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and not ("started" in data and data.get("finished") in (0, False)):
            return data
        sleep(0.05)
    return None


def stage_result(p, events, job):
    """What window_wait returns when the call reached its stage and goes on: that stage, with EVENTS."""
    step = STAGES[p["side"]][p["stage"]][1]
    return dict(changed=True, cut=p["stage"] == "cut", ready=p["stage"] == "ready", committed=step == "committed",
                side=p["side"], events=events, ansible_job_id=job.get("ansible_job_id"))


def wait_problem(p):
    """Why these parameters of window_wait cannot be carried out, or None."""
    if p["stage"] != "end" and not p["run_id"]:
        return "stage %s needs run_id" % p["stage"]
    if not p["wait"] and p["stage"] not in NOTE_STAGES:
        return "wait=false leaves a note and returns: it needs stage %s, not %s" % (" or ".join(NOTE_STAGES),
                                                                                    p["stage"])
    for side, stages in sorted(STAGES.items()):
        if p["stage"] in stages and p["side"] != side and p["stage"] not in NOTE_STAGES:
            return "stage %s is a %s's call's stage: it needs side=%s" % (p["stage"], side, side)
    return None


def would_wait(p):
    """What the wait would do (check mode), as one sentence."""
    if not p["wait"]:
        return "check mode: would leave the %s note for the %s side's call" % (p["stage"], p["side"])
    note = "leave the %s note, then " % p["stage"] if p["stage"] in NOTE_STAGES else ""
    return "check mode: would %swait for the %s side's call (stage %s)" % (note, p["side"], p["stage"])
