# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pre-copy: rounds of pre-dumps of a running container's memory before the fence, so that the dump made with
the container frozen writes only the pages written to since the last round.

A pre-dump (``runc checkpoint --pre-dump``) leaves the container running and has the kernel start tracking
the pages written to from then on (soft-dirty, ``CONFIG_MEM_SOFT_DIRTY``); each round writes only those, on
the round before (``--parent-path``). The final checkpoint continues the last round: the runtime wrapper adds
``--parent-path`` to it (``lazy.request_parent``), and the split (``pages.split``) serves the pages that did not
change since from the pre-dump that holds them. So with ``precopy+lazy`` the frozen dump writes only what
changed during the last round, and the pages never cross inside the pause.

Rounds stop (``Rounds``) once a round wrote little (``ENOUGH_BYTES``), when one wrote more than ``SHRINK`` of the
round before (memory is written to about as fast as it is copied: more rounds would not shrink the last),
or at ``ROUND_LIMIT``. Kernels without soft-dirty (and arm64) cannot pre-dump: ``dirty_tracking_problem`` says
so, and the preflight refuses ``precopy+lazy`` there, before anything is frozen."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["PRECOPY_DIR", "ROUND_LIMIT", "ENOUGH_BYTES", "SHRINK", "Rounds", "dirty_tracking_problem",
           "predump_argv", "pre_copy"]

import os
import shutil
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages

PRECOPY_DIR = "/var/lib/stacklift/precopy"  # DIR/CONTAINER_ID/ROUND: the pre-dumps, until its pages are served
ROUND_LIMIT = 5  # go-criu's phaul stops at 8, Incus at 10; each round here is a full pass over the dirty pages
ENOUGH_BYTES = 16 << 20  # a last round this small is about 0.05 s of the frozen dump's writing
SHRINK = 0.5


class Rounds:
    """When to stop pre-dumping: ``add(bytes written)`` after each round returns why to stop, or None to go on."""

    def __init__(self, limit=ROUND_LIMIT, enough=ENOUGH_BYTES, shrink=SHRINK):
        if limit < 1:
            raise ValueError("at least one round")
        self.limit, self.enough, self.shrink = limit, enough, shrink
        self.written = []

    def add(self, written):
        self.written.append(written)
        if written <= self.enough:
            return "converged: the last round wrote %d bytes, at most %d" % (written, self.enough)
        if len(self.written) >= self.limit:
            return "round limit: %d rounds" % self.limit
        if len(self.written) > 1 and written > self.shrink * self.written[-2]:
            return "not converging: the last round wrote %d bytes, the one before %d" % (written, self.written[-2])
        return None


def dirty_tracking_problem(run):
    """Why this host's CRIU cannot pre-dump (None when it can): RUN(argv) -> (rc, stdout, stderr)."""
    rc, out, err = run(["criu", "check", "--feature", "mem_dirty_track"])
    if rc == 0:
        return None
    said = " ".join((err or out or "").split())[-200:]
    return ("this kernel does not track the pages written to (CONFIG_MEM_SOFT_DIRTY; arm64 has none), so CRIU "
            "cannot pre-dump%s" % (": criu check said: %s" % said if said else ""))


def predump_argv(runc, container_id, image_dir, parent=None):
    """The host's runc pre-dumping CONTAINER_ID into IMAGE_DIR (on the pre-dump PARENT, relative or absolute)."""
    argv = [runc, "checkpoint", "--pre-dump", "--image-path", image_dir, "--work-path", image_dir]
    if parent:
        argv += ["--parent-path", parent]
    return argv + [container_id]


def pre_copy(run, runc, container_id, rounds=None, root=PRECOPY_DIR, clock=time.time):
    """Pre-dump CONTAINER_ID in ROUNDS (default Rounds()) into ROOT/CONTAINER_ID/N:
    {rounds: [{bytes, seconds}], stopped, parent (the last round's directory, for the final checkpoint),
    error}. A failed round ends the pre-copy: the rounds before it stand (parent is the last good one), or,
    failing the first, parent is None and the final checkpoint writes everything, as without pre-copy."""
    rounds = rounds or Rounds()
    home = os.path.join(root, container_id)
    if os.path.isdir(home):
        shutil.rmtree(home)  # an earlier run's, which its window no longer needs (a new pre-copy starts here)
    os.makedirs(home, 0o700)
    done, stopped, error = [], None, None
    while stopped is None:
        image_dir = os.path.join(home, str(len(done) + 1))
        os.mkdir(image_dir, 0o700)
        start = clock()
        rc, out, err = run(predump_argv(runc, container_id, image_dir, "../%d" % len(done) if done else None))
        if rc != 0:
            error = "round %d: runc checkpoint --pre-dump failed (%d): %s" % (
                len(done) + 1, rc, " ".join((err or out or "").split())[-300:])
            shutil.rmtree(image_dir)
            break
        written = pages.present_bytes(image_dir)
        done.append({"bytes": written, "seconds": round(clock() - start, 3)})
        stopped = rounds.add(written)
    if not done:
        pages.remove_tree(home)
    return {"rounds": done, "stopped": stopped, "error": error,
            "parent": os.path.join(home, str(len(done))) if done else None}
