# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The note and marker protocol: what a stack's calls on a host leave there for each other and for
the controller, in its Python form (read_note, wait_for_note, write_note) and its shell form
(note_command, committed_command, poll_command, parsed by parse_poll) side by side: the stack's
marker journal (each step the moment it is done), and notes (a waiting target told that no archive
will come, or that the stack is committed; the controller told that the copies are ready).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "marker_path", "run_archive_dir", "NOTES", "note_path", "note_body", "note_command", "write_note",
    "committed_command", "read_note", "note_time", "first_note", "wait_for_note", "remove_notes", "SECTIONS",
    "poll_command", "parse_poll",
]

import json
import os
import posixpath
import time

from shlex import quote

from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import NOFOLLOW, open_nofollow


def marker_path(archive_dir, stack):
    return os.path.join(archive_dir, "%s.journal" % stack)


def run_archive_dir(archive_dir, run_id):
    """Where run RUN_ID's archives lie, on its sources and its targets: a directory of the run's own, so
    an archive kept from another run under the same container name is never taken for this run's."""
    return os.path.join(archive_dir, "runs", run_id)


# Notes: one file each, STACK.KIND, holding {"run": RUN_ID, "msg": ...}. "abort": the source gave up
# (or a rollback came), no archive will come; "window": the source has its window (its slot, or it needs
# none) and quiesces and fences now, so the target's wait for the archives counts from then; "cut": the source's
# services are fenced and answered, the traffic may go to the target (window_wait stage=cut); "ready": the
# target's copies are ready and wait for the commit; "commit": the controller recorded the commit, the
# target's copies may serve; "served": the target lifted its fence (its call goes on while lazy memory fills).
NOTES = ("abort", "window", "cut", "ready", "commit", "served")


def note_path(archive_dir, stack, kind):
    return os.path.join(archive_dir, "%s.%s" % (stack, kind))


def note_body(run_id, msg=None):
    return json.dumps({"run": run_id, "msg": msg})


def note_command(path, body):
    """The shell command that leaves the note BODY at PATH on another host, whole or not at all."""
    tmp = path + ".tmp"
    return "mkdir -p %s && printf %%s %s > %s && mv -f %s %s" % (
        quote(os.path.dirname(path)), quote(body), quote(tmp), quote(tmp), quote(path))


def write_note(archive_dir, stack, kind, run_id, msg=None):
    """Leave a KIND note of RUN_ID for the stack's calls on this host (whole or not at all)."""
    if not os.path.isdir(archive_dir):
        os.makedirs(archive_dir, 0o700)
    path = note_path(archive_dir, stack, kind)
    if os.path.islink(path + ".tmp"):
        os.unlink(path + ".tmp")
    with os.fdopen(os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, 0o600), "w") as f:
        f.write(note_body(run_id, msg))
    os.rename(path + ".tmp", path)


def committed_command(archive_dir, stack, run_id, wait=1.0, step=0.05):
    """The shell command that exits 0 on a target host as soon as the stack's marker journal there
    holds a "committed" record of RUN_ID (the target lifted its fence: the stack serves there), and
    1 after WAIT seconds without one. Shell builtins, sleep and grep only."""
    marker = quote(marker_path(archive_dir, stack))
    step_is, run_is = quote('"step": "committed"'), quote('"run": %s' % json.dumps(run_id))
    return ("m={m}; i=0; while :; do [ -e \"$m\" ] && grep -F {step} \"$m\" | grep -qF {run} && exit 0; "
            "[ $i -ge {n} ] && exit 1; i=$((i+1)); sleep {s}; done").format(
                m=marker, step=step_is, run=run_is, n=max(0, int(wait / step)), s=step)


def read_note(archive_dir, stack, kind, run_id):
    """The KIND note's message when there is one of RUN_ID ("" without a message), else None."""
    try:
        with open_nofollow(note_path(archive_dir, stack, kind)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return (data.get("msg") or "") if isinstance(data, dict) and data.get("run") == run_id else None


def note_time(archive_dir, stack, kind, run_id):
    """When the KIND note of RUN_ID came to this host (its file's time, on this host's clock), else None."""
    if read_note(archive_dir, stack, kind, run_id) is None:
        return None
    try:
        return os.stat(note_path(archive_dir, stack, kind)).st_mtime
    except OSError:
        return None


def first_note(archive_dir, stack, run_id, kinds):
    """(kind, message) of the first of KINDS' notes of RUN_ID that is there, in KINDS' order; else (None, None)."""
    for kind in kinds:
        msg = read_note(archive_dir, stack, kind, run_id)
        if msg is not None:
            return kind, msg
    return None, None


def wait_for_note(archive_dir, stack, run_id, kinds, timeout, interval=0.05, clock=time.time, sleep=time.sleep):
    """(kind, message) of the first of KINDS' notes of RUN_ID to be there, in KINDS' order; (None, None)
    after TIMEOUT seconds."""
    deadline = clock() + timeout
    while True:
        found = first_note(archive_dir, stack, run_id, kinds)
        if found[0] is not None or clock() > deadline:
            return found
        sleep(interval)


def remove_notes(archive_dir, stack, kinds=NOTES):
    for kind in kinds:
        path = note_path(archive_dir, stack, kind)
        if os.path.exists(path):
            os.unlink(path)


SECTIONS = ("--stacklift-result--", "--stacklift-marker--", "--stacklift-parts--", "--stacklift-now--")


def poll_command(results_file, marker, archive_dir, wait=2.0, step=0.05, until_note=None):
    """A shell command for the host: wait up to WAIT seconds for the call whose async results are in
    RESULTS_FILE to end (or for the note UNTIL_NOTE, a (path, run id), to be there), then print its
    results (once it has ended), the tail of the stack's MARKER journal and the sizes of the
    transfers' part files and of the archives in ARCHIVE_DIR. The wait uses the shell's builtins and
    sleep only (grep once the note is there), to cost the frozen stack's host next to nothing."""
    loops = max(1, int(wait / step))
    there = "return 1;"
    if until_note:
        path, pattern = quote(until_note[0]), quote('"run": %s' % json.dumps(until_note[1]))
        there = "[ -e %s ] && grep -qF %s %s;" % (path, pattern, path)
    return (
        "f={f}; i=0; "
        "running() {{ [ -e \"$f\" ] || return 1; l=; read -r l < \"$f\"; [ -n \"$l\" ] || return 0; "
        "case \"$l\" in *'\"finished\": false'*|*'\"finished\": 0'*) return 0;; esac; return 1; }}; "
        "there() {{ {there} }}; "
        "while [ $i -lt {n} ] && running && ! there; do i=$((i+1)); sleep {s}; done; "
        "echo {r}; if [ ! -e \"$f\" ]; then echo {gone}; elif ! running; then cat \"$f\"; fi; "
        "echo; echo {m}; tail -n 400 {marker} 2>/dev/null; "
        "echo {p}; for p in {parts}; do [ -e \"$p\" ] && stat -c '%s %n' \"$p\" 2>/dev/null; done; "
        "echo {now}; date +%s.%N"
    ).format(f=quote(results_file), n=loops, there=there, s=step, r=SECTIONS[0], m=SECTIONS[1],
             p=SECTIONS[2], now=SECTIONS[3], marker=quote(marker),
             parts="%s.*.part-* %s*.tar*" % ((quote(archive_dir.rstrip("/") + "/"),) * 2),
             gone=quote(json.dumps({"failed": True, "msg": "the call's results file %s is not on the host: the call "
                                                           "never started there, or the host restarted" % results_file})))


def parse_poll(stdout):
    """(the call's result when it has ended else None, the marker's records, {part file name: bytes},
    the host's clock)."""
    parts = {}
    text = stdout
    sections = {}
    for i, name in enumerate(SECTIONS):
        start = text.find(name)
        if start < 0:
            raise ValueError("the host's answer lacks %s: %r" % (name, stdout[-500:]))
        end = text.find(SECTIONS[i + 1]) if i + 1 < len(SECTIONS) else len(text)
        sections[name] = text[start + len(name):end].strip()
    result = None
    if sections[SECTIONS[0]]:
        try:
            result = json.loads(sections[SECTIONS[0]])
        except ValueError:
            result = {"failed": True, "msg": "the window's call ended with output that is not JSON",
                      "module_stdout": sections[SECTIONS[0]][-4000:]}
    records = []
    for line in sections[SECTIONS[1]].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    for line in sections[SECTIONS[2]].splitlines():
        size, _sep, path = line.partition(" ")
        if size.isdigit():
            parts[posixpath.basename(path)] = int(size)
    try:
        now = float(sections[SECTIONS[3]].split()[0])
    except (ValueError, IndexError):
        now = None
    return result, records, parts, now
