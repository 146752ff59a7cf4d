# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration window, run on the hosts rather than task by task from the controller.

One call on each source host (``SourceWindow``, source.py) fences its services, checkpoints them tier by
tier (the services of a tier in parallel) and sends each archive to its target as soon as it
is durable.  One call on each target host (``TargetWindow``, target.py) raises a fence of its own, restores
tier by tier as the archives arrive, each tier passing its probes before the next starts, and,
when asked, commits: it lifts its fence, and only then can the target's copies serve.

Both record every step in the host's marker journal (journal.py; the notes of protocol.py) the moment it completes, and
both are idempotent: called again with the same run, they go on from what the marker says.
Rollback is the other two states: the target removes its copies (still fenced) and confirms
they are gone; the source restores its checkpointed containers in place and lifts its fences.
This file holds what both share: ``Window`` (the marker, the host's lock, parallel work) and ``WindowError``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["POLL", "WindowError", "Window"]

import contextlib
import fcntl
import glob
import os
import shutil
import threading
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import MANIFEST_SUFFIX
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import archive_name
from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import ensure_private_dir
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import REQUEST_DIR
from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import NOFOLLOW
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal, fold
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import (
    marker_path, read_note, run_archive_dir)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

POLL = 0.05


class WindowError(StackliftError):
    """The window could not go on; ``problems`` lists every reason, ``events`` what was done."""

    def __init__(self, problems, events=None, **details):
        problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(problems), **details)
        self.problems = problems
        self.events = events or []

    def fail_kwargs(self):
        return dict(super().fail_kwargs(), problems=self.problems, events=self.events)


class Window:
    """What a source's and a target's call share: the host, the stack's marker journal, its lock."""

    encryption_key = None  # archives encrypted at rest (_archive/encryption.py) when set
    lazy_requests = REQUEST_DIR  # where the runtime wrapper finds what to split and what to restore lazily

    def __init__(self, host, stack, run_id, archive_dir, services, tiers):
        self.host = host
        self.engine = host.engine
        self.stack = stack
        self.run_id = run_id
        self.archive_dir = archive_dir
        self.services = services  # {name: {container, tcp, probe?, target?}} of this host
        self.tiers = [[n for n in tier if n in services] for tier in tiers]
        self.tiers = [t for t in self.tiers if t]
        self.marker = Journal(marker_path(archive_dir, stack))
        self.state = fold(self.marker.records(run_id))
        self.events = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def exclusive(self, timeout=600.0):
        """One window call at a time per stack on this host: a call of a run whose controller died may
        still be working here, and a rollback must wait for it rather than race it."""
        ensure_private_dir(self.archive_dir)
        fd = os.open(marker_path(self.archive_dir, self.stack) + ".lock", os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        deadline = time.time() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise WindowError("another stacklift call on stack %s still works on this host after %d s"
                                          % (self.stack, timeout))
                    time.sleep(0.1)
            self.state = fold(self.marker.records(self.run_id))  # what that call did counts
            yield
        finally:
            os.close(fd)

    side = None

    def status(self):
        """What the module returns about this host besides the events."""
        return {"side": self.side}

    def record(self, step, service=None, **data):
        rec = self.marker.append(step, run=self.run_id, service=service, **data)
        with self._lock:
            self.events.append(rec)
            if service:
                self.state["services"].setdefault(service, {})[step] = rec
        return rec

    def done(self, service, step):
        return step in self.state["services"].get(service, {})

    def abort_reason(self):
        """The message of the run's abort note here (the source gave up, or a rollback came), else None."""
        return read_note(self.archive_dir, self.stack, "abort", self.run_id)

    def refuse_if_ended(self, step):
        """A run this host rolled back (STEP recorded for a service: the source's rolled_back, the target's
        removed) is over here: called again, it must not fence running containers and report success."""
        ended = sorted(n for n in self.services if self.done(n, step))
        if ended:
            raise WindowError("run %s of stack %s was rolled back on this host (%s: %s); it is over: start a new run"
                              % (self.run_id, self.stack, step, ", ".join(ended)), self.events)

    def archive(self, name):
        """NAME's archive of this run, in the run's own directory (protocol.run_archive_dir)."""
        return archive_name(run_archive_dir(self.archive_dir, self.run_id), self.services[name]["container"])

    def remove_archive(self, name, parts=False):
        """NAME's archive and manifest here, its staged files (and, with PARTS, any transfer's part files); the run's
        directory too once nothing is left in it."""
        archive = self.archive(name)
        extra = glob.glob(os.path.join(glob.escape(os.path.dirname(archive)), ".%s*.part-*"
                                       % glob.escape(os.path.basename(archive)))) if parts else []
        for path in [archive, archive + MANIFEST_SUFFIX] + extra:
            if os.path.exists(path):
                os.unlink(path)
        if os.path.isdir(archive + tree.STAGE_SUFFIX):  # its files staged here before the fence
            shutil.rmtree(archive + tree.STAGE_SUFFIX)
        try:
            os.rmdir(os.path.dirname(archive))
        except OSError:
            pass  # still holds another service's archive, or was never made here

    def container(self, name):
        try:
            return self.engine.container(self.services[name]["container"])
        except NotFound:
            return None

    def parallel(self, fn, names, workers=None):
        """fn(name) for each name, WORKERS at a time (all at once by default), started in order;
        returns {name: error message} of those that failed."""
        errors = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), workers or len(names)))) as pool:
            futures = {n: pool.submit(fn, n) for n in names}
        for n, f in futures.items():
            exc = f.exception()
            if exc is not None:
                errors[n] = getattr(exc, "msg", None) or str(exc) or exc.__class__.__name__
        return errors
