# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A source host's window slots: how many stacks may be in their window on it at once.

Each slot is a file locked (flock) by the call that holds it, from before it quiesces until the stack is
committed (its targets serve) or aborted (the note). The kernel gives a lock back when the call ends,
however it ends, so a slot is never left held by a dead call, and no controller is asked."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["NoSlot", "Cancelled", "SLOT_DIR", "window_slot"]

import contextlib
import fcntl
import os
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import NOFOLLOW
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


class NoSlot(StackliftError):
    """No window slot came free in time."""


class Cancelled(NoSlot):
    """The wait for a slot ended by a note: nothing may be fenced."""


# One set of slots per host, whatever archive directory each stack uses; /run: a lock needs no disk.
SLOT_DIR = "/run/stacklift/windows"


@contextlib.contextmanager
def window_slot(directory, slots, timeout, interval=0.05, clock=time.time, sleep=time.sleep, cancelled=None):
    """Hold one of SLOTS slots in DIRECTORY for the block: yields (slot index, seconds waited for it).
    SLOTS of 0 is no limit: yields (None, 0.0) at once. Raises NoSlot after TIMEOUT seconds, and Cancelled
    as soon as CANCELLED() (asked while it waits) returns a reason that is not None."""
    if slots < 1:
        yield None, 0.0
        return
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    # one open file description per slot: flock conflicts between them even within one process
    fds = [os.open(os.path.join(directory, "slot-%d.lock" % i), os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
           for i in range(slots)]
    start, held = clock(), None
    try:
        while held is None:
            for i, fd in enumerate(fds):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue
                held = i
                break
            if held is None:
                reason = cancelled() if cancelled else None
                if reason is not None:
                    raise Cancelled("given up while waiting for a window on this host: %s" % (reason or "no reason given"))
                if clock() - start >= timeout:
                    raise NoSlot("no window free on this host in %g s (at most %d stack%s at once fence, checkpoint "
                                 "and send here)" % (timeout, slots, "s" if slots != 1 else ""))
                sleep(interval)
        yield held, clock() - start
    finally:
        for fd in fds:
            os.close(fd)  # closing gives the lock back
