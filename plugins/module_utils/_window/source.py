# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A source host's part of the migration window (base.py): fence, checkpoint, send; its rollback
(restore in place) and its clean-up."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["SourceWindow", "VOLUME_TREE"]

import os
import threading
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    MANIFEST_SUFFIX, read_manifest, sha256_file)
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import tree_bytes
from ansible_collections.stacklift.migrate.plugins.module_utils._container.checkpoint import (
    CheckpointError, checkpoint_container, checkpoint_problems)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import lazy
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.pages import discard
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    EngineError, container_address, container_ips, container_volumes)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import host_fence_table
from ansible_collections.stacklift.migrate.plugins.module_utils._services.quiesce import QuiesceError, quiesce_service
from ansible_collections.stacklift.migrate.plugins.module_utils._window.slots import SLOT_DIR, NoSlot, window_slot
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import first_note, remove_notes, write_note
from ansible_collections.stacklift.migrate.plugins.module_utils._window.base import POLL, Window, WindowError


VOLUME_TREE = "volume-"  # a staged volume's tree: VOLUME_TREE + its name


class SourceWindow(Window):
    """One source host's part of the window."""

    side = "source"

    def __init__(self, host, stack, run_id, archive_dir, services, tiers, sender=None, compression="zstd",
                 quiesce_timeout=30.0, windows=0, windows_timeout=300.0):
        super().__init__(host, stack, run_id, archive_dir, services, tiers)
        self.quiesce_timeout = quiesce_timeout
        self.windows, self.windows_timeout = windows, windows_timeout  # the host's window slots
        self.slot_dir = SLOT_DIR
        self.sender = sender  # sender(name, archive, manifest, sha256) -> {bytes, seconds}; abort(msg)
        self.compression = compression
        self.workers = max(2, os.cpu_count() or 1)
        self.starts = {}  # {service: when its container's process started}, as check() saw it
        # {service: {tree: (its directory here, where in the container, its staged manifest, its directory on the
        # target when it is staged in place: a volume's)}}; a tree other than the root ("/") is applied exactly
        self.staged = {}

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
        wanted = [n for n in self.services if self.services[n].get("memory") == "precopy+lazy"]
        why = self.host.pre_copy_problem() if wanted else None
        if why:
            problems.append("service %s: memory precopy+lazy: %s" % (", ".join(wanted), why))
        running = [self.services[n]["container"] for n, c in containers.items()
                   if c and ((c.get("State") or {}).get("Running"))]
        info = self.engine.info()
        if running and not problems:
            tcp = {svc["container"]: svc["tcp"] for svc in self.services.values()}
            inspected = {self.services[n]["container"]: c for n, c in containers.items() if c}
            problems += checkpoint_problems(self.engine, running, info=info, inspected=inspected, tcp=tcp)
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
        (its targets serve; an abort note, or nothing within windows_timeout, ends it too): so one
        stack at a time is in its window, restores included. Any failure tells the targets,
        so that none waits for archives that will not come."""
        try:
            self.refuse_if_ended("rolled_back")
            problems, containers, info = self.check()  # a refusal does not wait for a slot
            if problems:
                raise WindowError(problems, self.events)
            if self.sender:
                self.sender.connect_all()
            with window_slot(self.slot_dir, self.windows, self.windows_timeout, cancelled=self.abort_reason) as \
                    (slot, waited):
                if slot is not None:
                    self.record("window", slot=slot, waited_s=round(waited, 3))
                    if waited > 0.05:
                        self._still(containers)
                reason = self.abort_reason()  # a rollback's note that came as the slot was given
                if reason is not None:
                    raise WindowError("given up before the fence: %s" % (reason or "no reason given"), self.events)
                self.pre_copy(containers)
                self.stage_files(containers)
                if self.sender:  # the targets' wait for the archives counts from now; they fence these addresses
                    self.sender.tell("window", self._fenced_addresses(containers)[1])
                events = self._checkpointed(containers, info)
                split = self.split_services()
                if self.sender and (slot is not None or split):
                    if self._hold_until_committed().get("note") == "commit" and split:
                        self._hold_until_served(split)
                return events
        except Exception as e:  # pylint: disable=broad-except
            if self.sender:
                self.sender.abort("source %s: %s" % (os.uname()[1], e))
            if isinstance(e, NoSlot):
                raise WindowError(str(e), self.events)
            raise

    def _hold_until_committed(self):
        """Until the stack is committed: its targets serve (seen there, so the next stack's window starts
        the moment this one's ends) or the controller's commit note is here. An abort note (a rollback
        waits for this call), or neither within windows_timeout, ends it too."""
        deadline, served = time.time() + self.windows_timeout, threading.Event()
        watcher = threading.Thread(target=self._watch_targets, args=(served, deadline))
        watcher.daemon = True  # it ends with the sender's connections, when the call closes them
        watcher.start()
        while True:
            kind, _msg = first_note(self.archive_dir, self.stack, self.run_id, ("commit", "abort"))
            if kind:
                return self.record("window_given_back", note=kind)
            if served.is_set():
                return self.record("window_given_back", note="commit", seen_on="targets")
            if time.time() >= deadline:
                return self.record("window_given_back", note=None)
            served.wait(POLL)

    def _watch_targets(self, served, deadline):
        """Set SERVED once every target has lifted its fence for the run (its committed record, looked
        up over the connections that carried the archives); give up, unset, at DEADLINE or when the
        targets cannot be asked (the controller's note here ends the wait then)."""
        while time.time() < deadline:
            start, wait = time.time(), min(1.0, max(0.0, deadline - time.time()))
            try:
                if self.sender.committed(wait=wait):
                    served.set()
                    return
            except Exception:  # pylint: disable=broad-except
                return
            if time.time() - start < wait / 2:
                return  # an answer without the wait: asking does not work here

    def split_services(self):
        """{name: what its checkpoint's split left here} of the services whose lazy pages stay on this host."""
        return {n: s["checkpointed"]["pages"] for n, s in self.state["services"].items()
                if (s.get("checkpointed") or {}).get("pages")}

    def _hold_until_served(self, split):
        """After the commit: until each target's lazy-pages daemon has taken every page it lacked (it closes
        its connection saying so). An abort note, or windows_timeout, ends the wait; the pages stay here."""
        deadline = time.time() + self.windows_timeout
        while True:
            served = self.sender.pages_served()
            for name in sorted(split):
                if name in served and not self.done(name, "pages_served"):
                    self.record("pages_served", name, **served[name])
            if all(self.done(n, "pages_served") for n in split):
                for name in sorted(split):  # the target holds them all: the pages kept here (in memory, say) go
                    discard(split[name]["image_dir"])
                return
            if time.time() >= deadline or self.abort_reason() is not None:
                raise WindowError(["%s: its target has not taken all of its memory's pages; they stay on this host "
                                   "(%s)" % (n, split[n]["image_dir"]) for n in sorted(split)
                                   if not self.done(n, "pages_served")], self.events)
            time.sleep(POLL)

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
        for name in self.services:  # the cut made: each fence answers every retransmission (fences.FENCE_RULES)
            state = containers[name].get("State") or {}
            if state.get("Running") and not self.done(name, "icmp_unlimited"):
                self.record("icmp_unlimited", name, was=self.host.unlimit_icmp(state["Pid"]))
        self._answer_for(containers)
        write_note(self.archive_dir, self.stack, "cut", self.run_id)  # the traffic may go (window_wait stage=cut)
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
            return {"archive": archive, "sha256": rec["sha256"], "manifest": archive + MANIFEST_SUFFIX,
                    "pages": rec.get("pages"), "files": rec.get("files")}
        svc = self.services[name]
        split = container.get("Id") if self.splits(name, container) else None
        staged = self.staged.get(name) or {}
        # read at the fence: a file mapped shared and writable may change without its status changing
        mapped = self.host.shared_writable_files((container.get("State") or {}).get("Pid")) if staged else ()
        try:
            if split:
                # written into memory where it fits: a dump to disk is throttled by writeback while frozen
                need = self.host.container_memory_bytes((container.get("State") or {}).get("Pid"))
                lazy.request_split(split, self.lazy_requests, scratch=self.host.scratch_for(need) if need else "")
            entry = checkpoint_container(self.engine, svc["container"], container, archive, info,
                                         compression=self.compression, tcp=svc["tcp"],
                                         file_locks=True, keep=True, encryption_key=self.encryption_key,
                                         origin={"stack": self.stack, "run_id": self.run_id},
                                         ignore_rootfs="rootfs" in staged,
                                         ignore_volumes=any(k.startswith(VOLUME_TREE) for k in staged))
        except CheckpointError as e:
            if e.details.get("partial"):
                self.record("checkpoint_incomplete", name, partial=e.details["partial"])
            raise
        finally:
            outcome = lazy.split_outcome(split, self.lazy_requests) if split else None
        if outcome and outcome.get("error"):
            self.record("split_failed", name, detail=outcome["error"])  # the archive holds every page
        entry["pages"] = outcome if outcome and not outcome.get("error") else None
        entry["files"] = self._sync_files(name, staged, mapped) if staged else None
        self.record("checkpointed", name, archive=archive, sha256=entry["sha256"], size=entry["size"],
                    compression=self.compression, pages=entry["pages"], files=entry["files"],
                    container_id=entry["id"], started=entry["started_at"], frozen=entry["checkpointed_at"],
                    timings={k: v for k, v in entry["timings"].items() if k.endswith(("time", "duration"))})
        return entry

    def _fenced_addresses(self, containers):
        """(the running services, which the cut fences; their addresses)."""
        running = [n for n in self.services if ((containers[n] or {}).get("State") or {}).get("Running")]
        return running, sorted(set(ip for n in running for ip in container_ips(containers[n]).values()))

    def _answer_for(self, containers):
        """The cut made: the addresses here of the fenced containers go on answering their clients' established
        connections with ICMP host-unreachable through the host fence (a rollback raises it too), at the host's
        interfaces' ingress (fences.HOST_FENCE_INGRESS), before the packets reach a container's own fence, which
        answers the same. Raised after each checkpoint instead, it left a gap (the container's namespace gone, its
        address not yet answered: a retransmission met silence, and the client's backoff doubled for the rest of
        the pause, seen on the lab); raised by nobody, the client met no route from the checkpoint to the traffic
        switch, with errors the host sends at most one a second. The controller's commit note lifts it
        (fences.lift_answers_command), or the clean-up or the rollback. Not answering costs only that: a failure
        here is recorded, not raised."""
        running, addresses = self._fenced_addresses(containers)
        if not (addresses and self.sender):  # a migration's, not a keep; raised again on a rerun (idempotent)
            return
        try:
            self.host.raise_host_fence(host_fence_table(self.stack))
            self.host.fence_addresses(host_fence_table(self.stack), addresses)
        except EngineError as e:
            for name in running:
                self.record("not_answered", name, detail=e.msg)

    def _sync_files(self, name, staged, mapped):
        """Inside the pause, NAME checkpointed: what changed in its staged trees since, sent; returns, for its archive's
        manifest, where each is on the target and its manifest's digest, and the volumes they make there."""
        trees, volumes = [], []
        for key, (path, into, previous, in_place) in sorted(staged.items()):
            stage = os.path.join(self.stage(name), key)
            entries, stats = self.sender.stage_files(name, path, stage, previous, tree.under(mapped, into),
                                                     tree_dir=in_place)
            trees.append({"stage": stage, "digest": tree.digest_of(entries), "into": into, "exact": into != "/",
                          "in_place": in_place, "bytes": tree.entries_bytes(entries), "synced_bytes": stats["bytes"],
                          "synced_s": stats["seconds"]})
            if key.startswith(VOLUME_TREE):
                volumes.append(key[len(VOLUME_TREE):])
        return {"trees": trees, "volumes": volumes, "bytes": sum(t["bytes"] for t in trees),
                "synced_bytes": sum(t["synced_bytes"] for t in trees),
                "synced_s": round(sum(t["synced_s"] for t in trees), 3)}

    def stage(self, name):
        """Where NAME's files are staged on its target: beside its archive (the same path there), a directory a tree."""
        return self.archive(name) + tree.STAGE_SUFFIX

    def file_trees(self, name, container):
        """{key: (host directory, where it is in the container)} of NAME's files staged on its target before
        the fence: its changes to the image (its overlay upper directory; "rootfs") and its named volumes (each whole;
        "volume-NAME"), when they hold STAGE_BYTES or more together and this Podman host's wrapper is installed (the
        target restores through its own). Empty: they cross in the archive, as they do when archives are encrypted
        (what is kept beside an archive then is only ever encrypted)."""
        if self.sender is None or self.encryption_key or lazy.lazy_problem(self.engine.name, None) is not None:
            return {}
        upper = ((container.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        trees = {"rootfs": (upper, "/")} if upper and os.path.isdir(upper) else {}
        volumes = [m for m in container.get("Mounts") or [] if m.get("Type") == "volume"]
        if all(m.get("Name") and os.path.isdir(m.get("Source") or "") and m.get("Destination") for m in volumes):
            # all of them or none: the checkpoint leaves out every volume or none
            trees.update((VOLUME_TREE + m["Name"], (m["Source"], m["Destination"])) for m in volumes)
        return trees if sum(tree_bytes(t[0]) for t in trees.values()) >= tree.STAGE_BYTES else {}

    def stage_files(self, containers):
        """Before the quiesce and the fence, while they serve: the files of the services that stage them sent to
        their targets whole (the pause then sends what changed since). A staging that fails leaves the files to
        the archive."""
        for name in [n for tier in self.tiers for n in tier]:
            c = containers[name]
            running = not self.done(name, "fenced") and (c.get("State") or {}).get("Running")
            trees = self.file_trees(name, c) if running else {}
            if not trees:
                continue
            start, staged, sent = time.time(), {}, 0
            try:
                for key, (path, into) in sorted(trees.items()):
                    stage = os.path.join(self.stage(name), key)
                    # a volume straight into the one made for it on the target: nothing to put in place in the pause
                    in_place = self.sender.volume_dir(name, key[len(VOLUME_TREE):], stage) \
                        if key.startswith(VOLUME_TREE) else None
                    entries, stats = self.sender.stage_files(name, path, stage, {}, tree_dir=in_place)
                    staged[key], sent = (path, into, entries, in_place), sent + stats["bytes"]
            except Exception as e:  # pylint: disable=broad-except
                # a volume made on the target and half filled must not meet the archive's copy of it there
                dropped = self.sender.drop_staged(name, self.stage(name))
                self.record("files_not_staged", name, started=start, detail=str(e) + (
                    "" if dropped is None else "; what it left on the target could not be removed: %s" % dropped))
                if dropped is not None:
                    raise WindowError("%s: its files could not be staged (%s), nor what the staging left on its "
                                      "target removed (%s)" % (name, e, dropped), self.events)
                continue
            self.staged[name] = staged
            self.record("files_staged", name, started=start, bytes=sent, trees=sorted(staged),
                        entries=sum(len(t[2]) for t in staged.values()))

    def splits(self, name, container):
        """Whether NAME's checkpoint is split (its lazy pages stay here, served to its target after the
        restore): its memory is lazy, or auto and at least AUTO_LAZY_BYTES, and this host's runtime wrapper
        can do it (the archives go by this window's sender)."""
        wanted = self.services[name].get("memory") or lazy.MEMORY_DEFAULT
        if wanted == "eager" or self.sender is None or not lazy.is_container_id(container.get("Id")) or \
                lazy.lazy_problem(self.engine.name, None) is not None:
            return False
        pid = (container.get("State") or {}).get("Pid")
        return wanted in lazy.LAZY_MODES or self.host.memory_bytes(pid) >= lazy.AUTO_LAZY_BYTES

    def pre_copies(self, name, container):
        """Whether NAME's split checkpoint continues pre-dumps made before the fence: its memory is
        precopy+lazy, or auto and split, and this host's kernel tracks written pages."""
        wanted = self.services[name].get("memory") or lazy.MEMORY_DEFAULT
        return wanted in ("precopy+lazy", "auto") and self.splits(name, container) and \
            self.host.pre_copy_problem() is None

    def pre_copy(self, containers):
        """Before the quiesce and the fence, while they serve: the rounds of pre-dumps of the services that
        pre-copy, and the wrapper asked to have their checkpoints continue the last. A pre-copy that fails
        leaves its checkpoint whole (lazy, as without it)."""
        for name in [n for tier in self.tiers for n in tier]:
            c = containers[name]
            if self.done(name, "fenced") or not ((c.get("State") or {}).get("Running")) or \
                    not self.pre_copies(name, c):
                continue
            start = time.time()
            res = self.host.pre_copy(c["Id"])
            if res["parent"]:
                lazy.request_parent(c["Id"], res["parent"], self.lazy_requests)
            self.record("pre_copied", name, started=start, rounds=res["rounds"], stopped=res["stopped"],
                        error=res["error"])

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
                stats = self.sender(name, entry["archive"], entry["manifest"], entry["sha256"], entry.get("pages"),
                                    entry.get("files"))
                self.record("sent", name, started=start, bytes=stats.get("bytes"),
                            clock_offset=stats.get("clock_offset"), clock_error=stats.get("clock_error"))
            except Exception as e:  # pylint: disable=broad-except
                failures.append("%s: sending %s failed: %s" % (name, entry["archive"], e))

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
                    self.engine.restore_in_place(self.services[name]["container"], tcp=self.services[name]["tcp"],
                                                 file_locks=True)
                    self.host.drop_pre_copy((self.container(name) or {}).get("Id"))
                    self.record("rolled_back", name, started=start)
                except EngineError as e:
                    problems.append("%s: restoring it in place failed: %s (its archive stays at %s)"
                                    % (name, e.msg, self.archive(name)))
            # Peers see the whole stack come back at once: fences are lifted last, on every path.
            for name in order:
                state = (self.container(name) or {}).get("State") or {}
                if state.get("Running"):
                    try:
                        was = self.state["services"].get(name, {}).get("icmp_unlimited", {}).get("was", "")
                        self.host.unfence_container(state["Pid"], name, icmp_ratelimit=was)
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
                self.host.drop_pre_copy(c.get("Id"))
                for volume in sorted(container_volumes(c)):
                    try:
                        self.engine.remove_volume(volume)
                    except EngineError:  # gone already, or in use by a container of no stack of ours
                        pass
            if not keep_archives:
                self.remove_archive(name)
            self.record("removed", name)
        self.host.lift_host_fence(host_fence_table(self.stack))  # raised as each was checkpointed (_answer_for)
        if problems:
            raise WindowError(problems, self.events)
        remove_notes(self.archive_dir, self.stack)
        return self.events
