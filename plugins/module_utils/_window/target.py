# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A target host's part of the migration window (base.py): restore tier by tier behind the host's
fence, probe, wait for the commit and serve; its rollback (remove the copies)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["STALL_TIMEOUT", "bytes_of", "TargetWindow"]

import glob
import ipaddress
import os
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._services import probes
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    ArchiveError, MANIFEST_SUFFIX, read_manifest, sha256_file)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.facts import read_archive
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import SUFFIXES, archive_name
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import CryptError, plaintext
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    EngineError, NotFound, container_address)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import lazy
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import host_fence_table
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import (
    note_time, read_note, remove_notes, wait_for_note, write_note)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.base import POLL, Window, WindowError

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


def _is_address(text):
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class TargetWindow(Window):
    """One target host's part of the window."""

    side = "target"

    def __init__(self, host, stack, run_id, archive_dir, services, tiers, wait_timeout=300.0,
                 probe_timeout=60.0, stable_for=0.0, windows_timeout=0.0):
        super().__init__(host, stack, run_id, archive_dir, services, tiers)
        self.table = host_fence_table(stack)
        self.wait_timeout = wait_timeout
        self.windows_timeout = windows_timeout  # how long the source may wait for a window slot first
        self.started = None
        self.announced = []  # the addresses the source's window note named, fenced here (_fence_announced)
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
        self.refuse_if_ended("removed")
        self.host.raise_host_fence(self.table)
        self._note_other_archives()
        self.started = time.time()
        for tier in self.tiers:
            errors = self.parallel(self._restore, tier)
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

    def other_archives(self, name):
        """Archives here under NAME's container name that are not this run's: kept from an earlier run,
        left by a rollback, or made by container_checkpoint. Never restored by this run."""
        mine = os.path.dirname(self.archive(name))
        dirs = [self.archive_dir] + sorted(glob.glob(os.path.join(glob.escape(self.archive_dir), "runs", "*")))
        found = [archive_name(d, self.services[name]["container"], c) for d in dirs if d != mine for c in SUFFIXES]
        return [path for path in found if os.path.exists(path)]

    def _note_other_archives(self):
        for name in self.services:
            others = self.other_archives(name) if not self.done(name, "other_archives") else []
            if others:
                self.record("other_archives", name, paths=others)

    def deadline(self):
        """(when the archives must all be here, why): wait_timeout from the source's "window" note (it has its
        slot and fences now); before that note came, windows_timeout longer, the most it may wait for a slot."""
        told = note_time(self.archive_dir, self.stack, "window", self.run_id)
        if told is not None:
            return told + self.wait_timeout, "within %g s of the source's window" % self.wait_timeout
        return (self.started + self.windows_timeout + self.wait_timeout,
                "within %g s (the source never said it had its window)" % (self.windows_timeout + self.wait_timeout))

    def _fence_announced(self):
        """The addresses the source's "window" note names (those it is about to fence) fenced here at once: a client
        the traffic switch sends here at the cut (stacklift_traffic_switch_at) is answered from then, not met by
        silence (and a doubling backoff) until its container's archive arrives. The note comes once a run."""
        if self.announced:
            return
        said = read_note(self.archive_dir, self.stack, "window", self.run_id)
        addresses = sorted(set(a for a in said if _is_address(a))) if isinstance(said, list) else []
        if addresses:
            self.host.fence_addresses(self.table, addresses)
            self.announced = addresses

    def _wait_for(self, name):
        archive = self.archive(name)
        manifest = archive + MANIFEST_SUFFIX
        parts = os.path.join(glob.escape(os.path.dirname(archive)), ".%s.part-*" % glob.escape(os.path.basename(archive)))
        last_size, last_change = None, time.time()
        while not os.path.exists(manifest):
            self._fence_announced()
            reason = self.abort_reason()
            if reason is not None:
                raise WindowError("the source gave up: %s" % (reason or "no reason given"))
            deadline, within = self.deadline()
            if time.time() > deadline:
                raise WindowError("its archive %s did not arrive %s" % (archive, within))
            # Once the archive is on its way, a transfer that stops moving is given up on early.
            size = bytes_of(glob.glob(parts)) or None
            if size != last_size:
                last_size, last_change = size, time.time()
            elif size and time.time() - last_change > STALL_TIMEOUT:
                raise WindowError("the transfer of %s stalled at %d bytes for %d s" % (archive, size, STALL_TIMEOUT))
            time.sleep(POLL)
        manifest = read_manifest(archive)
        origin = (manifest.get("stack"), manifest.get("run_id"))
        if origin != (self.stack, self.run_id):
            raise WindowError("%s is not this run's archive (its manifest names stack %r, run %r; this is stack %r, "
                              "run %r): not restoring" % (archive, origin[0], origin[1], self.stack, self.run_id))
        return archive, manifest

    def _restore(self, name):
        svc = self.services[name]
        if self.done(name, "restored"):
            c = self.container(name)
            if c and c["Id"] == self.state["services"][name]["restored"].get("container_id") and \
                    (c.get("State") or {}).get("Running"):
                return
            raise WindowError("restored earlier, but its container is no longer running here")
        archive, manifest = self._wait_for(name)
        arrived = time.time()
        checked = manifest.get("arrived_checked") or {}
        if checked.get("sha256") == manifest.get("sha256") and checked.get("size") == os.path.getsize(archive):
            digest, checked_where = checked["sha256"], "on arrival"  # the push hashed it as it came, before its rename
        else:  # it came another way: read it all
            digest, checked_where = sha256_file(archive), "here"
        timings = {"digest_duration": int((time.time() - arrived) * 1e6)}
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
        remote = manifest.get("pages")  # the lazy pages stayed on the source, served at this port of our loopback
        memory = self.memory_mode(name, manifest.get("container_id"), remote=bool(remote))
        files = self._staged_files(archive, manifest)
        copied = [t for t in files if not t.get("in_place")]  # the wrapper's to put in place; volumes are already
        start, stats = time.time(), None
        try:
            if copied:
                lazy.request_files(manifest["container_id"], copied, self.lazy_requests)
            if memory == "lazy":
                lazy.request_lazy(manifest["container_id"], self.lazy_requests, page_server=remote)
            with plaintext(archive, self.encryption_key) as plain:  # decrypted beside it, gone after
                stats = self.engine.restore(plain, tcp=svc["tcp"], file_locks=True,
                                            ignore_rootfs=any(t["into"] == "/" for t in files),
                                            ignore_volumes=any(t["into"] != "/" for t in files)) or {}
        except CryptError as e:
            raise WindowError(str(e))
        finally:
            if files:
                lazy.release_files(manifest["container_id"], self.lazy_requests)
            if memory == "lazy":
                lazy.release_request(manifest["container_id"], self.lazy_requests)
                if stats is None:  # the restore failed: a daemon it never reached would wait for it forever
                    lazy.stop_fill(manifest["container_id"], self.lazy_requests)
        timings.update((k, v) for k, v in stats.items() if k.endswith(("time", "duration")))
        self.host.addresses_restored(self.table, ips)
        c = self.engine.container(svc["container"])
        try:
            self.record("restored", name, arrived=arrived, started=start, container_id=c["Id"], addresses=ips,
                        memory=memory, pages_from="source" if remote else ("images" if memory == "lazy" else None),
                        timings=timings, sha256_checked=checked_where)
        except OSError as e:  # a copy this host has no record of would outlive the rollback
            self.engine.remove_force(svc["container"])
            raise WindowError("restored, but its record could not be written (%s): the copy is removed again" % e)

    def _staged_files(self, archive, manifest):
        """The trees of the archive's container staged here before the fence ([{stage, digest, into, exact}]; empty:
        its files are in the archive). Refused when this host's wrapper cannot put them in place, or one is not
        beside this archive: restored without them, the service would run on the image's files."""
        trees = (manifest.get("files") or {}).get("trees") or []
        if not trees:
            return []
        problem = lazy.files_problem() if lazy.is_container_id(manifest.get("container_id")) else \
            "its archive's manifest names no container ID"
        for t in trees if not problem else []:
            if not (t.get("stage") or "").startswith(archive + tree.STAGE_SUFFIX + "/"):
                problem = "they are at %s, not beside this archive" % t.get("stage")
            elif t.get("in_place"):  # a volume, filled where it is: its manifest checked here, before the restore
                try:
                    tree.check(t["stage"], t["digest"])
                except (tree.TreeError, OSError, ValueError) as e:
                    problem = "%s: %s" % (t["into"], e)
        if problem:
            raise WindowError("its files were staged before the fence, and cannot be put in place: %s" % problem)
        return trees

    def memory_mode(self, name, container_id, remote=False):
        """How NAME's memory crosses here: "lazy" (filled in after the restore) or "eager". REMOTE: its archive
        holds no lazy page (they stayed on the source: lazy, or auto and large), so only a lazy restore can
        take it. Else "lazy" restores lazily from the archive's images, and "auto" eagerly (a small service, or
        a source that could not split). A lazy restore on a host that cannot is refused. CONTAINER_ID: the
        container's, from its archive's manifest (the wrapper knows a restore by it)."""
        wanted = self.services[name].get("memory") or lazy.MEMORY_DEFAULT
        if wanted not in lazy.LAZY_MODES and not remote:
            return "eager"
        problem = lazy.lazy_problem(self.engine.name, None)
        if not problem and not lazy.is_container_id(container_id):
            problem = "its archive's manifest names no container ID"
        if problem:
            raise WindowError("memory %s: %s%s" % (wanted, problem, "; its pages stayed on the source, so it "
                                                   "restores lazily or not at all" if remote else ""))
        return "lazy"

    def lazy_services(self):
        """{name: container ID} of the services restored lazily here by this run."""
        return {n: s["restored"]["container_id"] for n, s in self.state["services"].items()
                if (s.get("restored") or {}).get("memory") == "lazy"}

    def _fill_failures(self, names=None, held=False):
        """The lazy fills of this run's services (NAMES, default all) that died, or (HELD) whose daemon's
        userfaultfds no keeper holds too (a copy whose daemon died after the commit would read zeros where its
        pages were): [message]."""
        out = []
        for name, cid in sorted(self.lazy_services().items()):
            if names is None or name in names:
                state = lazy.fill_state(cid, self.lazy_requests)
                problem = lazy.hold_problem(cid, self.lazy_requests) if held else None
                if state["state"] == "failed":
                    out.append("%s: its memory was not filled in (%s); the process stalls on the pages it lacks"
                               % (name, state["detail"]))
                elif problem:
                    out.append("%s: %s" % (name, problem))
        return out

    def _await_resident(self, timeout):
        """After the commit: each lazy service's memory filled in (its "resident" record), within TIMEOUT: by its
        lazy-pages daemon, or, when that died, by its keeper (the record's "finished": what the keeper did)."""
        deadline = time.time() + timeout
        todo = {n: c for n, c in self.lazy_services().items() if not self.done(n, "resident")}
        problems, failed_at = [], {}
        while todo:
            for name, cid in sorted(todo.items()):
                state = lazy.fill_state(cid, self.lazy_requests)
                finish = state["finish"] or {}
                if state["state"] in ("resident", "none") or finish.get("state") == "done":
                    extra = {"finished": dict(finish, daemon=state["detail"])} if finish else {}
                    self.record("resident", name, started=self.state["services"][name]["restored"].get("t"), **extra)
                    del todo[name]
                elif state["state"] == "failed" and (finish.get("state") == "failed" or not finish and
                                                     time.time() - failed_at.setdefault(name, time.time()) > 10):
                    problems.append("%s: committed, but its memory was not filled in (%s%s): it stalls on the pages "
                                    "it lacks; its archive %s is kept (state at the fence) for a restore by hand"
                                    % (name, state["detail"], "; its keeper could not finish it: %s"
                                       % finish["detail"] if finish else "", self.archive(name)))
                    del todo[name]
            if todo and time.time() > deadline:
                problems += ["%s: its memory was still being filled in %g s after the commit" % (n, timeout)
                             for n in sorted(todo)]
                break
            if todo:
                time.sleep(POLL)
        return problems

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
            raise WindowError("failed its %s probe for %.1f s (%s)" % (spec["type"], res["elapsed"], res["detail"]))
        failed = self._fill_failures([name], held=True)
        if failed:
            raise WindowError(failed)
        self.record("ready", name, started=start, attempts=res["attempts"])

    def serving(self, keep_archives=False):
        """The commit: the fence goes, and the copies here serve; then the archives received go (a
        committed run goes forward only: they are not needed again)."""
        missing = [n for n in self.services if not self.done(n, "ready") and not self.done(n, "committed")]
        if missing:
            raise WindowError("cannot commit: %s not ready here" % ", ".join(sorted(missing)), self.events)
        failed = self._fill_failures() if not self.committed() else []
        if failed:  # a copy with holes never serves: the window rolls back to the source
            raise WindowError(["cannot commit: %s" % f for f in failed], self.events)
        self.host.lift_host_fence(self.table)
        for name in self.services:
            if not self.done(name, "committed"):
                self.record("committed", name)
        # The controller's wait (window_wait stage=commit or served) ends here: traffic may come while lazy memory fills.
        write_note(self.archive_dir, self.stack, "served", self.run_id)
        problems = self._await_resident(self.wait_timeout)
        if problems:  # the archives stay: the state at the fence, for a restore by hand
            raise WindowError(problems, self.events)
        for name in self.services if not keep_archives else ():
            self.remove_archive(name)
        remove_notes(self.archive_dir, self.stack, ("window", "ready", "commit", "served"))
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
            if (self.state["services"].get(name, {}).get("restored") or {}).get("memory") == "lazy":
                lazy.stop_fill(c["Id"], self.lazy_requests)
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
            made = [(lazy.read_text(p) or "").strip() for p in glob.glob(os.path.join(
                glob.escape(self.archive(name) + tree.STAGE_SUFFIX), "*", tree.MADE))]  # staged before its manifest came
            volumes = set(read_manifest(self.archive(name)).get("volumes") or []) | set(v for v in made if v)
            problems += self._remove_volumes(name, sorted(volumes))
            self.remove_archive(name, parts=True)
        if problems:
            raise WindowError(problems, self.events)
        self.host.lift_host_fence(self.table)
        remove_notes(self.archive_dir, self.stack)
        return self.events
