# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoint one container to a durable, self-describing archive.

Used by container_checkpoint (one container at a time, by hand) and by the migration window
(window_source, the services of a tier in parallel).  The archive is written under a temporary
name, completed by its engine (Podman's rootfs diff: engines/podman.py), fsynced, renamed into place, and its
manifest written and fsynced: once ``checkpoint_container`` returns, the archive survives a
power cut.  The engine keeps its own checkpoint images too (``keep``), so the source can be
restored in place, without the archive, on a rollback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["CheckpointError", "checkpoint_problems", "checkpoint_container", "archive_entry"]

import os
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import sha256_file, write_manifest
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import encrypt_file
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    EngineError, container_ips, container_volumes)
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import (
    cap_bounding_set, docker_container_problems, docker_daemon_problems, host_criu_problem, manager_problems,
    uid_problem)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import ensure_private_dir, fsync_file
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


class CheckpointError(StackliftError):
    """A checkpoint failed; ``details`` go to fail_json (cmd, rc, stdout, stderr, ...)."""


def checkpoint_problems(engine, names, info=None, capbnd=None, tcp=None, file_locks=(), inspected=None):
    """Why these running containers cannot be checkpointed on this host: a list, empty when they can.

    INSPECTED: {name: inspect data} the caller has already (else each is inspected here).

    TCP: {name: its TCP mode (engines.base.TCP_MODES)}; FILE_LOCKS: the names moved with their file locks
    (True: all of them)."""
    info = info or engine.info()
    tcp = tcp or {}
    file_locks = set(names) if file_locks is True else set(file_locks or ())
    problems = []
    problem = host_criu_problem(info)
    if problem:
        problems.append("cannot checkpoint on this host: %s" % problem)
    if info.get("engine") == "docker":
        problems += ["cannot checkpoint on this host: %s" % p for p in docker_daemon_problems(info)]
    capbnd = cap_bounding_set() if capbnd is None else capbnd
    for name in names:
        problem = uid_problem(engine.container_users(name), capbnd)
        if problem:
            problems.append("cannot checkpoint container %r: %s" % (name, problem))
        container = (inspected or {}).get(name) or engine.container(name)
        problems += manager_problems(info.get("engine"), name, container)
        if info.get("engine") == "docker":
            problems += docker_container_problems(name, container, tcp=tcp.get(name), file_locks=name in file_locks)
    return problems


def _us(seconds):
    """SECONDS in microseconds, as the engines' own checkpoint statistics are."""
    return int(seconds * 1e6)


def checkpoint_container(engine, name, container, archive, host_info, compression="zstd",
                         tcp=None, file_locks=False, keep=True, leave_running=False,
                         ignore_volumes=False, ignore_rootfs=False, encryption_key=None, origin=None):
    """Checkpoint NAME to ARCHIVE durably; returns the entry container_checkpoint reports.

    ORIGIN ({stack, run_id}) goes into the manifest: a window's target restores only an archive of its
    own run, with the digest its source recorded for that run.

    With ENCRYPTION_KEY the archive is encrypted (_archive/encryption.py) as soon as it is complete, and its
    plaintext removed: what is kept and sent is only ever the encrypted file.

    On failure nothing is left under the archive's name.  When the engine's checkpoint succeeded
    but the archive could not be completed, the container is already stopped: the incomplete
    archive is kept under its temporary name (``partial`` in the error) and is never deleted here,
    since with ``keep`` false it may be the only copy of the container's memory.
    """
    directory = os.path.dirname(archive) or "."
    ensure_private_dir(directory)
    tmp = os.path.join(directory, ".%s.part" % os.path.basename(archive))
    start = time.time()
    try:
        stats = engine.checkpoint(name, tmp, compression=compression, tcp=tcp,
                                  file_locks=file_locks, keep=keep, leave_running=leave_running,
                                  ignore_volumes=ignore_volumes, ignore_rootfs=ignore_rootfs)
    except EngineError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CheckpointError(**e.fail_kwargs())
    checkpointed_at = time.time()
    added, what = [], "complete its root file system diff"
    try:
        os.chmod(tmp, 0o600)
        if not ignore_rootfs:
            added = engine.complete_archive(name, tmp)
        completed = time.time()
        fsync_file(tmp)
        stats.update(rootfs_completion_duration=_us(completed - checkpointed_at), fsync_duration=_us(time.time() - completed))
        if encryption_key:
            what = "encrypt its archive"
            encrypted = tmp + ".enc"
            if os.path.lexists(encrypted):
                os.unlink(encrypted)
            encrypt_file(tmp, encrypted, encryption_key)
            os.unlink(tmp)
            tmp = encrypted
    except (StackliftError, OSError) as e:
        details = e.fail_kwargs() if isinstance(e, StackliftError) else {}
        details.pop("msg", None)
        if encryption_key and keep:  # never plaintext on disk with a key; the engine keeps the checkpoint
            for path in (tmp, tmp + ".enc"):
                if os.path.lexists(path):
                    os.unlink(path)
            raise CheckpointError("checkpoint of %r: could not %s: %s; the container is checkpointed (its engine "
                                  "keeps the checkpoint, for a restore in place) and its unencrypted archive was "
                                  "removed" % (name, what, e), **details)
        raise CheckpointError("checkpoint of %r: could not %s: %s; the container is checkpointed and its "
                              "incomplete archive kept at %s" % (name, what, e, tmp),
                              partial=tmp, **details)
    os.rename(tmp, archive)
    hashing = time.time()
    digest = sha256_file(archive)
    stats["digest_duration"] = _us(time.time() - hashing)
    manifest = {
        "container_name": name, "container_id": container["Id"], "sha256": digest,
        "image_id": container.get("Image"), "image_name": container.get("ImageName"),
        "engine": host_info.get("engine"), "engine_version": host_info.get("engine_version"),
        "runtime": host_info.get("runtime"), "runtime_version": host_info.get("runtime_version"),
        "criu_version": host_info.get("criu_version"), "kernel": host_info.get("kernel"),
        "cgroup_version": host_info.get("cgroup_version"), "host": os.uname()[1],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "compression": compression, "tcp_established": tcp == "established",
        "encryption": "aes-256-gcm-stream" if encryption_key else None,
        "file_locks": file_locks, "timings": stats, "rootfs_files_added": added,
        # False: its changed files are not in it (staged on the target before the fence, tree.py)
        "rootfs_included": not ignore_rootfs,
        # The target fences these before it restores, without reading the archive.
        "addresses": container_ips(container),
        # The named volumes the restore makes on the target (a rollback removes them there).
        "volumes": sorted(container_volumes(container)) if not ignore_volumes else [],
        "stack": (origin or {}).get("stack"), "run_id": (origin or {}).get("run_id"),
    }
    mpath = write_manifest(archive, manifest)
    fsync_file(mpath)
    fsync_file(archive)
    done = time.time()
    entry = archive_entry(name, container, archive, mpath, digest, True, round(done - start, 3), stats)
    entry.update(started_at=start, checkpointed_at=checkpointed_at, finished_at=done, rootfs_files_added=added)
    return entry


def archive_entry(name, container, archive, manifest, digest, changed, seconds, timings):
    image_id = container.get("Image")
    return {"name": name, "id": container["Id"], "archive": archive, "manifest": manifest,
            "size": os.path.getsize(archive) if os.path.exists(archive) else 0, "sha256": digest,
            "image_id": image_id if not image_id or image_id.startswith("sha256:") else "sha256:" + image_id,
            "image_name": container.get("ImageName"), "changed": changed, "seconds": seconds,
            "timings": timings, "started_at": None, "finished_at": None}
