# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration window, run on the hosts rather than task by task from the controller.

One call on each source host (``SourceAgent``) fences its services, checkpoints them tier by
tier (the services of a tier in parallel) and sends each archive to its target as soon as it
is durable.  One call on each target host (``TargetAgent``) raises a fence of its own, restores
tier by tier as the archives arrive, each tier passing its probes before the next starts, and,
when asked, commits: it lifts its fence, and only then can the target's copies serve.

Both record every step in the host's marker journal (journal.py) the moment it completes, and
both are idempotent: called again with the same run, they go on from what the marker says.
Rollback is the other two states: the target removes its copies (still fenced) and confirms
they are gone; the source restores its checkpointed containers in place and lifts its fences.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import glob
import ipaddress
import os
import threading
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.stacklift.migrate.plugins.module_utils import probes
from ansible_collections.stacklift.migrate.plugins.module_utils.archive import (
    ArchiveError, MANIFEST_SUFFIX, read_archive, read_manifest, sha256_file)
from ansible_collections.stacklift.migrate.plugins.module_utils.checkpointing import (
    CheckpointError, archive_name, checkpoint_container, checkpoint_problems)
from ansible_collections.stacklift.migrate.plugins.module_utils.encryption import CryptError, plaintext
from ansible_collections.stacklift.migrate.plugins.module_utils.engines.base import (
    EngineError, NotFound, container_address, container_ips, container_volumes)
from ansible_collections.stacklift.migrate.plugins.module_utils.fences import host_fence_table
from ansible_collections.stacklift.migrate.plugins.module_utils.journal import Journal, fold
from ansible_collections.stacklift.migrate.plugins.module_utils.quiesce import QuiesceError, quiesce_service
from ansible_collections.stacklift.migrate.plugins.module_utils.coordination import (
    SLOT_DIR, NoSlot, marker_path, read_note, remove_notes, wait_for_note, window_slot, write_note)

POLL = 0.05
STALL_TIMEOUT = 20  # seconds a transfer under way may make no progress (the sender gives up at 15)


def bytes_of(paths):
    """The bytes of the files PATHS that still exist: a transfer's part file is renamed into place
    between the listing and the look at its size."""
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass
    return total


class WindowError(Exception):
    """The window could not go on; ``problems`` lists every reason, ``events`` what was done."""

    def __init__(self, problems, events=None, **details):
        problems = [problems] if isinstance(problems, str) else list(problems)
        super(WindowError, self).__init__("; ".join(problems))
        self.msg = "; ".join(problems)
        self.problems = problems
        self.events = events or []
        self.details = details


class _Agent(object):
    encryption_key = None  # archives encrypted at rest (encryption.py) when set

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
        """One agent at a time per stack on this host: a call of a run whose controller died may
        still be working here, and a rollback must wait for it rather than race it."""
        if not os.path.isdir(self.archive_dir):
            os.makedirs(self.archive_dir, 0o700)
        fd = os.open(marker_path(self.archive_dir, self.stack) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.time() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError):
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

    def archive(self, name):
        return archive_name(self.archive_dir, self.services[name]["container"])

    def remove_archive(self, name, parts=False):
        """NAME's archive and manifest here (and, with PARTS, any transfer's part files)."""
        archive = self.archive(name)
        extra = glob.glob(os.path.join(self.archive_dir, ".%s*.part-*" % os.path.basename(archive))) if parts else []
        for path in [archive, archive + MANIFEST_SUFFIX] + extra:
            if os.path.exists(path):
                os.unlink(path)

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
            futures = dict((n, pool.submit(fn, n)) for n in names)
        for n, f in futures.items():
            exc = f.exception()
            if exc is not None:
                errors[n] = getattr(exc, "msg", None) or str(exc) or exc.__class__.__name__
        return errors


class SourceAgent(_Agent):
    """One source host's part of the window."""

    side = "source"

    def __init__(self, host, stack, run_id, archive_dir, services, tiers, sender=None, compression="zstd",
                 quiesce_timeout=30.0, windows=0, windows_timeout=300.0):
        super(SourceAgent, self).__init__(host, stack, run_id, archive_dir, services, tiers)
        self.quiesce_timeout = quiesce_timeout
        self.windows, self.windows_timeout = windows, windows_timeout  # the host's window slots
        self.slot_dir = SLOT_DIR
        self.sender = sender  # sender(name, archive, manifest, sha256) -> {bytes, seconds}; abort(msg)
        self.compression = compression
        self.workers = max(2, os.cpu_count() or 1)
        self.starts = {}  # {service: when its container's process started}, as check() saw it

    def check(self):
        """Every reason the window cannot start here, before anything is fenced."""
        problems, containers = [], {}
        found = self.engine.containers_named(s["container"] for s in self.services.values())
        for name in self.services:
            c = found[self.services[name]["container"]]
            state = (c or {}).get("State") or {}
            if c is None:
                problems.append("service %s: no container %r on this host" % (name, self.services[name]["container"]))
            elif not state.get("Running") and not self.done(name, "checkpointed"):
                problems.append("service %s: container %r is %s, not running"
                                % (name, self.services[name]["container"], state.get("Status")))
            containers[name] = c
            self.starts[name] = self.host.process_start(state.get("Pid"))
        running = [self.services[n]["container"] for n, c in containers.items()
                   if c and ((c.get("State") or {}).get("Running"))]
        info = self.engine.info()
        if running and not problems:
            by_tcp = dict((t, [self.services[n]["container"] for n in self.services if self.services[n]["tcp"] == t])
                          for t in ("established", "close"))
            problems += checkpoint_problems(self.engine, running, info=info, tcp_established=by_tcp["established"],
                                            tcp_close=by_tcp["close"])
        return problems, containers, info

    def quiesce(self, containers):
        """Dependents first, each service as its ``quiesce`` settings say, right before the fence."""
        for name in [n for tier in reversed(self.tiers) for n in tier]:
            state = containers[name].get("State") or {}
            spec = dict(self.services[name].get("quiesce") or {"method": "none"})
            if not state.get("Running") or self.done(name, "fenced") or spec.get("method", "none") == "none":
                continue
            spec.setdefault("timeout", self.quiesce_timeout)
            try:
                res = quiesce_service(container_address(containers[name]), state.get("Pid"), spec)
            except QuiesceError as e:
                raise WindowError("%s: %s %s" % (name, self.services[name]["container"], e.msg), self.events)
            self.record("quiesced", name, started=res["started_at"], method=spec["method"])

    def checkpointed(self):
        """In one of the host's window slots, from before the quiesce until the stack is committed
        (the controller's commit note; an abort note, or none within windows_timeout, ends it too):
        so one stack at a time is in its window, restores included. Any failure tells the targets,
        so that none waits for archives that will not come."""
        try:
            problems, containers, info = self.check()  # a refusal does not wait for a slot
            if problems:
                raise WindowError(problems, self.events)
            if self.sender:
                self.sender.connect_all()
            with window_slot(self.slot_dir, self.windows, self.windows_timeout) as (slot, waited):
                if slot is not None:
                    self.record("window", slot=slot, waited_s=round(waited, 3))
                    if waited > 0.05:
                        self._still(containers)
                events = self._checkpointed(containers, info)
                if slot is not None and self.sender:
                    self._hold_until_committed()
                return events
        except Exception as e:  # pylint: disable=broad-except
            if self.sender:
                self.sender.abort("source %s: %s" % (os.uname()[1], getattr(e, "msg", None) or e))
            if isinstance(e, NoSlot):
                raise WindowError(str(e), self.events)
            raise

    def _hold_until_committed(self):
        """Until the stack is committed: its targets' fences lifted (looked up there over the sender's
        connections, so the next stack's window starts the moment this one's ends) or the controller's
        commit note here. An abort note, or nothing within windows_timeout, ends it too."""
        deadline, ask = time.time() + self.windows_timeout, True
        while True:
            kind = next((k for k in ("commit", "abort")
                         if read_note(self.archive_dir, self.stack, k, self.run_id) is not None), None)
            left = deadline - time.time()
            if kind or left <= 0:
                return self.record("window_given_back", note=kind)
            if ask:
                start, wait = time.time(), min(1.0, left)
                try:
                    if self.sender.committed(wait=wait):
                        return self.record("window_given_back", note="commit", seen_on="targets")
                    ask = time.time() - start > wait / 2  # an answer without the wait: asking does not work
                except Exception:  # pylint: disable=broad-except
                    ask = False  # a target that cannot be asked: the controller's note here will come
                continue
            time.sleep(min(POLL, left))

    def _still(self, checked):
        """The containers checked, after a wait for a slot: each must still run the process it ran
        then (its PID with the same start, read in /proc: no engine command while another stack's
        window may be running on this host)."""
        problems = []
        for name, c in sorted(checked.items()):
            state = (c or {}).get("State") or {}
            if not state.get("Running"):
                continue
            if self.starts.get(name) is None:  # its process is not in this host's /proc: ask the engine
                now = ((self.container(name) or {}).get("State") or {})
                same = now.get("Running") and now.get("Pid") == state.get("Pid")
            else:
                same = self.host.process_start(state.get("Pid")) == self.starts[name]
            if not same:
                problems.append("service %s: container %r stopped or restarted while it waited for a window"
                                % (name, self.services[name]["container"]))
        if problems:
            raise WindowError(problems, self.events)

    def _checkpointed(self, containers, info):
        self.quiesce(containers)
        # The cut: every running service of this host fenced one right after the other.
        for name in self.services:
            state = containers[name].get("State") or {}
            if state.get("Running") and not self.host.container_fenced(state["Pid"]):
                self.host.fence_container(state["Pid"], name)
            if not self.done(name, "fenced"):
                self.record("fenced", name)
        queue, cond, failures = [], threading.Condition(), []
        sender_thread = None
        if self.sender:
            sender_thread = threading.Thread(target=self._send_loop, args=(queue, cond, failures))
            sender_thread.start()
        try:
            # Behind the fence the order of the checkpoints does not matter to consistency, only to
            # speed: all at once, as many as there are CPUs, lower tiers first, so that the target can
            # restore the tier it needs first while the others are still being written.
            def one(name):
                if failures:
                    raise WindowError("not checkpointed: an earlier failure stopped the window")
                entry = self._checkpoint(name, containers[name], info)
                with cond:
                    queue.append((name, entry))
                    cond.notify()
            order = [n for tier in self.tiers for n in tier]
            errors = self.parallel(one, order, workers=self.workers)
            failures += ["%s: %s" % (n, e) for n, e in sorted(errors.items())]
        finally:
            with cond:
                queue.append(None)
                cond.notify()
            if sender_thread:
                sender_thread.join()
        if failures:
            raise WindowError(failures, self.events)
        return self.events

    def _checkpoint(self, name, container, info):
        archive = self.archive(name)
        rec = self.state["services"].get(name, {}).get("checkpointed")
        if rec:
            if not os.path.exists(archive) or sha256_file(archive) != rec["sha256"]:
                raise WindowError("the archive %s recorded for %s is missing or changed" % (archive, name))
            return {"archive": archive, "sha256": rec["sha256"], "manifest": archive + MANIFEST_SUFFIX}
        svc = self.services[name]
        try:
            entry = checkpoint_container(self.engine, svc["container"], container, archive, info,
                                         compression=self.compression, tcp_established=svc["tcp"] == "established",
                                         file_locks=True, keep=True, encryption_key=self.encryption_key)
        except CheckpointError as e:
            if e.details.get("partial"):
                self.record("checkpoint_incomplete", name, partial=e.details["partial"])
            raise
        self.record("checkpointed", name, archive=archive, sha256=entry["sha256"], size=entry["size"],
                    container_id=entry["id"], started=entry["started_at"], frozen=entry["checkpointed_at"],
                    timings=dict((k, v) for k, v in entry["timings"].items() if k.endswith(("time", "duration"))))
        return entry

    def _send_loop(self, queue, cond, failures):
        while True:
            with cond:
                while not queue:
                    cond.wait()
                item = queue.pop(0)
            if item is None:
                return
            name, entry = item
            if failures or self.done(name, "sent"):
                continue
            try:
                start = time.time()
                stats = self.sender(name, entry["archive"], entry["manifest"], entry["sha256"])
                self.record("sent", name, started=start, bytes=stats.get("bytes"),
                            clock_offset=stats.get("clock_offset"), clock_error=stats.get("clock_error"))
            except Exception as e:  # pylint: disable=broad-except
                failures.append("%s: sending %s failed: %s" % (name, entry["archive"], getattr(e, "msg", e)))

    def running(self):
        """Rollback on the source: checkpointed containers restored in place, every fence lifted.

        Podman makes a container's new network namespace, with its address, before CRIU has put
        its sockets back: a client's packet arriving in between would be answered with a reset.
        So the restores happen behind the host's own fence (as on a target), lifted last.
        """
        problems = []
        order = [n for tier in self.tiers for n in tier]
        stopped = [n for n in order if not ((self.container(n) or {}).get("State") or {}).get("Running")]
        table = host_fence_table(self.stack)
        addresses = sorted(set(ip for n in stopped for ip in self._addresses(n)))
        try:
            if addresses:
                self.host.raise_host_fence(table)
                self.host.fence_addresses(table, addresses)
            for name in stopped:
                if self.container(name) is None:
                    problems.append("%s: container %r is gone from the source" % (name, self.services[name]["container"]))
                    continue
                try:
                    start = time.time()
                    self.engine.restore_in_place(self.services[name]["container"],
                                                 tcp_established=self.services[name]["tcp"] == "established",
                                                 file_locks=True)
                    self.record("rolled_back", name, started=start)
                except EngineError as e:
                    problems.append("%s: restoring it in place failed: %s (its archive stays at %s)"
                                    % (name, e.msg, self.archive(name)))
            # Peers see the whole stack come back at once: fences are lifted last, on every path.
            for name in order:
                state = (self.container(name) or {}).get("State") or {}
                if state.get("Running"):
                    try:
                        self.host.unfence_container(state["Pid"], name)
                        self.record("unfenced", name)
                    except EngineError as e:
                        problems.append("%s: %s" % (name, e.msg))
        finally:
            self.host.lift_host_fence(table)
        if problems:
            raise WindowError(problems, self.events)
        remove_notes(self.archive_dir, self.stack)
        return self.events

    def _addresses(self, name):
        """A stopped container's addresses: from its archive's manifest, else its inspect data."""
        recorded = read_manifest(self.archive(name)).get("addresses")
        if recorded is None:
            recorded = container_ips(self.container(name) or {})
        return list(recorded.values())

    def absent(self, keep_archives=False):
        """After the commit: the stopped source containers go, their named volumes (moved in the
        archives; one another container still uses stays), then their archives."""
        problems = []
        for name, svc in self.services.items():
            c = self.container(name)
            if c is not None and ((c.get("State") or {}).get("Running")):
                problems.append("%s: container %r runs on the source; not removing it" % (name, svc["container"]))
                continue
            if c is not None:
                self.engine.remove(svc["container"])
                for volume in sorted(container_volumes(c)):
                    try:
                        self.engine.remove_volume(volume)
                    except EngineError:  # gone already, or in use by a container of no stack of ours
                        pass
            if not keep_archives:
                self.remove_archive(name)
            self.record("removed", name)
        if problems:
            raise WindowError(problems, self.events)
        remove_notes(self.archive_dir, self.stack)
        return self.events


class TargetAgent(_Agent):
    """One target host's part of the window."""

    side = "target"

    def __init__(self, host, stack, run_id, archive_dir, services, tiers, wait_timeout=300.0,
                 probe_timeout=60.0, stable_for=0.0):
        super(TargetAgent, self).__init__(host, stack, run_id, archive_dir, services, tiers)
        self.table = host_fence_table(stack)
        self.wait_timeout = wait_timeout
        self.probe_timeout = probe_timeout
        self.stable_for = stable_for

    def committed(self):
        return any("committed" in s for s in self.state["services"].values())

    def status(self):
        return {"side": self.side, "committed": self.committed()}

    def restored(self, commit=False, keep_archives=False, await_commit=False):
        """Restore tier by tier as the archives arrive, each tier ready before the next. Then COMMIT
        serves at once; AWAIT_COMMIT leaves a "ready" note and waits for the controller's "commit"
        note (an "abort" note, or no note within wait_timeout, leaves the copies fenced)."""
        if self.committed():
            return self.events  # nothing left to do: the copies here serve
        self.host.raise_host_fence(self.table)
        deadline = time.time() + self.wait_timeout
        for tier in self.tiers:
            errors = self.parallel(lambda n: self._restore(n, deadline), tier)
            if not errors:
                errors = self.parallel(self._probe, tier)
            if errors:
                raise WindowError(["%s: %s" % (n, e) for n, e in sorted(errors.items())], self.events)
        if commit:
            self.serving(keep_archives=keep_archives)
        elif await_commit:
            self._await_commit(keep_archives)
        return self.events

    def _await_commit(self, keep_archives):
        write_note(self.archive_dir, self.stack, "ready", self.run_id)
        kind, msg = wait_for_note(self.archive_dir, self.stack, self.run_id, ("commit", "abort"), self.wait_timeout)
        if kind == "abort":
            raise WindowError("not committed (%s); the copies here stay fenced" % (msg or "no reason given"), self.events)
        if kind is None:
            raise WindowError("no commit came within %g s of the copies being ready; they stay fenced"
                              % self.wait_timeout, self.events)
        self.serving(keep_archives=keep_archives)

    def _wait_for(self, name, deadline):
        archive = self.archive(name)
        manifest = archive + MANIFEST_SUFFIX
        parts = os.path.join(self.archive_dir, ".%s.part-*" % os.path.basename(archive))
        last_size, last_change = None, time.time()
        while not os.path.exists(manifest):
            reason = read_note(self.archive_dir, self.stack, "abort", self.run_id)
            if reason is not None:
                raise WindowError("the source gave up: %s" % (reason or "no reason given"))
            if time.time() > deadline:
                raise WindowError("its archive %s did not arrive within %d s" % (archive, self.wait_timeout))
            # Once the archive is on its way, a transfer that stops moving is given up on early.
            size = bytes_of(glob.glob(parts)) or None
            if size != last_size:
                last_size, last_change = size, time.time()
            elif size and time.time() - last_change > STALL_TIMEOUT:
                raise WindowError("the transfer of %s stalled at %d bytes for %d s" % (archive, size, STALL_TIMEOUT))
            time.sleep(POLL)
        return archive, read_manifest(archive)

    def _restore(self, name, deadline):
        svc = self.services[name]
        if self.done(name, "restored"):
            c = self.container(name)
            if c and c["Id"] == self.state["services"][name]["restored"].get("container_id") and \
                    (c.get("State") or {}).get("Running"):
                return
            raise WindowError("restored earlier, but its container is no longer running here")
        archive, manifest = self._wait_for(name, deadline)
        arrived = time.time()
        digest = sha256_file(archive)
        if digest != manifest.get("sha256"):
            raise WindowError("%s has sha256 %s, its manifest says %s: damaged in transit; not restoring"
                              % (archive, digest, manifest.get("sha256")))
        if manifest.get("addresses") is not None:
            ips = sorted(set(manifest["addresses"].values()))
        else:  # an archive from elsewhere: read its addresses (a full pass over the archive)
            try:
                with plaintext(archive, self.encryption_key) as plain:
                    info = read_archive(plain, original=archive)
            except (ArchiveError, CryptError) as e:
                raise WindowError(str(e))
            ips = [str(ipaddress.ip_interface(ip).ip) for net in info["networks"].values() for ip in net["ips"]]
        self.host.fence_addresses(self.table, ips)
        start = time.time()
        try:
            with plaintext(archive, self.encryption_key) as plain:  # decrypted beside it, gone after
                self.engine.restore(plain, tcp_established=svc["tcp"] == "established",
                                    tcp_close=svc["tcp"] == "close", file_locks=True)
        except CryptError as e:
            raise WindowError(str(e))
        c = self.engine.container(svc["container"])
        try:
            self.record("restored", name, arrived=arrived, started=start, container_id=c["Id"], addresses=ips)
        except (IOError, OSError) as e:  # a copy this host has no record of would outlive the rollback
            self.engine.remove_force(svc["container"])
            raise WindowError("restored, but its record could not be written (%s): the copy is removed again" % e)

    def _probe(self, name):
        svc = self.services[name]
        spec = dict(svc.get("probe") or {"type": "tcp"}, container=svc["container"])
        address = None
        if spec["type"] != "command":
            address = spec.get("host") or container_address(self.engine.container(svc["container"]),
                                                            spec.get("network"))
        probe = probes.probe_for(spec, address, self.host.run, self.engine.exec_command)
        progress = None
        if spec.get("progress_command"):  # a value that must move: a service that answers but is stuck is not ready
            argv = self.engine.exec_command(svc["container"], spec["progress_command"])

            def progress():
                rc, out, _err = self.host.run(argv)
                return out.strip() if rc == 0 else None
        start = time.time()
        res = probes.wait_ready(probe, retries=spec.get("retries") or 10 ** 6, interval=spec.get("interval", 0.05),
                                timeout=spec.get("timeout", self.probe_timeout),
                                stable_for=spec.get("stable_for", self.stable_for),
                                progress=progress, baseline=spec.get("progress_baseline"))
        if not res["ready"]:
            raise WindowError("%s probe not ready after %.1f s: %s" % (spec["type"], res["elapsed"], res["detail"]))
        self.record("ready", name, started=start, attempts=res["attempts"])

    def serving(self, keep_archives=False):
        """The commit: the fence goes, and the copies here serve; then the archives received go (a
        committed run goes forward only: they are not needed again)."""
        missing = [n for n in self.services if not self.done(n, "ready") and not self.done(n, "committed")]
        if missing:
            raise WindowError("cannot commit: %s not ready here" % ", ".join(sorted(missing)), self.events)
        self.host.lift_host_fence(self.table)
        for name in self.services:
            if not self.done(name, "committed"):
                self.record("committed", name)
        for name in self.services if not keep_archives else ():
            self.remove_archive(name)
        remove_notes(self.archive_dir, self.stack, ("ready", "commit"))
        return self.events

    def _remove_volumes(self, name, volumes):
        """The named volumes the restore of NAME made here (the preflight refused any that existed)."""
        problems = []
        for volume in volumes:
            try:
                self.engine.remove_volume(volume)
                self.record("volume_removed", name, volume=volume)
            except NotFound:
                pass
            except EngineError as e:
                problems.append("%s: volume %r: %s" % (name, volume, e.msg))
        return problems

    def absent(self, force=False):
        """Rollback on the target: its copies, still fenced, removed and confirmed gone; volumes and
        archives too."""
        if self.committed() and not force:
            raise WindowError("the stack was committed on this host (its copies serve here); a rollback would "
                              "lose their state since the commit; migrate it back instead", self.events)
        if self.host.host_fence_up(self.table) or not self.committed():
            self.host.raise_host_fence(self.table)
        problems = []
        for name, svc in self.services.items():
            c = self.container(name)
            if c is None:
                continue
            ours = self.state["services"].get(name, {}).get("restored", {}).get("container_id")
            running = (c.get("State") or {}).get("Running")
            if running and c["Id"] != ours and not force:
                problems.append("%s: a running container %r here was not restored by run %s; not removing it"
                                % (name, svc["container"], self.run_id))
                continue
            try:
                self.engine.remove_force(svc["container"])
            except NotFound:
                pass
            except EngineError as e:
                problems.append("%s: %s" % (name, e.msg))
                continue
            if self.container(name) is not None:
                problems.append("%s: container %r is still here after its removal" % (name, svc["container"]))
                continue
            self.record("removed", name)
        for name in self.services:
            problems += self._remove_volumes(name, read_manifest(self.archive(name)).get("volumes") or [])
            self.remove_archive(name, parts=True)
        if problems:
            raise WindowError(problems, self.events)
        self.host.lift_host_fence(self.table)
        remove_notes(self.archive_dir, self.stack)
        return self.events
