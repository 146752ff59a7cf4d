#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_checkpoint
short_description: Checkpoint running containers to portable archives with CRIU
version_added: 0.1.0
description:
  - Checkpoints one or more running containers on the host the task runs on, each to an
    archive that C(stacklift.migrate.container_restore) can restore on another host.
  - Beside each archive it writes a manifest (C(ARCHIVE.stacklift.json)) with the archive's
    sha256 and the engine, CRIU, kernel and cgroup versions that made it, which
    C(stacklift.migrate.checkpoint_info) and the transfer modules use.
  - Archives are written mode 0600 (a new directory is made mode 0700), under a temporary name
    that is renamed only once the archive is whole and fsynced, so a returned archive survives a
    power cut. When the archive cannot be completed after the container was checkpointed, the
    incomplete archive is kept under its temporary name (C(partial) in the failure), never deleted.
  - Refuses, before freezing anything, when a container is missing or not running (with its
    actual state), when the host's CRIU cannot checkpoint on its kernel, and when the
    container runs processes under another uid on a host without CAP_SYS_RESOURCE.
  - Idempotent; a container that is already checkpointed to the archive asked for reports
    unchanged. With O(leave_running=true) every run takes a new checkpoint.
author:
  - stacklift developers (@stacklift)
options:
  name:
    description: Containers to checkpoint, one after another in the order given.
    type: list
    elements: str
    required: true
    aliases: [containers]
  archive:
    description:
      - Path of the archive. Only with a single container in O(name).
      - Defaults to O(archive_dir)/NAME.tar.zst (.tar.gz, .tar after O(compression)).
    type: path
  archive_dir:
    description: Directory for archives named after their containers. Created mode 0700.
    type: path
    default: /var/lib/stacklift/checkpoints
  compression:
    description: Compression of the archive.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  tcp_established:
    description: Checkpoint established TCP connections too (CRIU C(--tcp-established)).
    type: bool
    default: false
  file_locks:
    description: Checkpoint file locks (CRIU C(--file-locks)).
    type: bool
    default: false
  keep:
    description: Keep the engine's checkpoint images and logs on the host after exporting.
    type: bool
    default: false
  leave_running:
    description: Leave the container running after the checkpoint (a snapshot; not idempotent).
    type: bool
    default: false
  ignore_volumes:
    description: Do not put the content of the container's named volumes into the archive.
    type: bool
    default: false
  ignore_rootfs:
    description: Do not put the changes to the container's root file system into the archive.
    type: bool
    default: false
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.ENCRYPTION
attributes:
  check_mode:
    support: full
    details: Checks everything it would check, freezes nothing.
  diff_mode:
    support: full
notes:
  - Needs root and CRIU 4.2 or newer on Linux 6.16 and newer.
seealso:
  - module: stacklift.migrate.container_restore
  - module: stacklift.migrate.checkpoint_info
"""

EXAMPLES = r"""
- name: Checkpoint the database with its open TCP connections
  stacklift.migrate.container_checkpoint:
    name: db
    tcp_established: true
    file_locks: true
  register: ckpt

- name: Checkpoint a whole tier, keeping the checkpoints for a rollback
  stacklift.migrate.container_checkpoint:
    name: [cache, app]
    archive_dir: /srv/stacklift/archives
    keep: true
    compression: gzip
"""

RETURN = r"""
checkpoints:
  description: One entry for each container, in the order checkpointed.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
      sample: db
    id:
      description: Container ID.
      type: str
      sample: "3f1c0e5a9b7d"
    archive:
      description: Path of the archive.
      type: str
      sample: /var/lib/stacklift/checkpoints/db.tar.zst
    manifest:
      description: Path of the manifest written beside the archive.
      type: str
      sample: "/var/lib/stacklift/checkpoints/db.tar.zst.manifest.json"
    size:
      description: Archive size in bytes.
      type: int
      sample: 3612345
    sha256:
      description: SHA-256 of the archive.
      type: str
      sample: "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4a6b8d0f2e4a6c8b0d"
    image_id:
      description: ID of the container's image, which the target host needs.
      type: str
      sample: "sha256:8d2a41c0f3b9"
    image_name:
      description: Name of the container's image.
      type: str
      sample: "localhost/stacklift/postgres:latest"
    changed:
      description: Whether this container was checkpointed by this run.
      type: bool
      sample: true
    seconds:
      description: Wall time of the checkpoint, export included.
      type: float
      sample: 0.42
    started_at:
      description: Epoch time this container's checkpoint began (null when nothing was done).
      type: float
      sample: 1764324915.412
    finished_at:
      description: Epoch time it ended, archive and manifest written.
      type: float
      sample: 1764324915.832
    rootfs_files_added:
      description:
        - Files the container changed from its image that Podman's export left out of the archive's
          root file system diff, and that the module added (Podman keeps a changed file only when the
          same path exists on the host).
      type: list
      sample: ["/var/lib/postgresql/.psql_history"]
      elements: str
    timings:
      description: The engine's and CRIU's statistics, in microseconds (frozen_time is how long the processes were frozen).
      type: dict
      sample: {podman_checkpoint_duration: 333155, runtime_checkpoint_duration: 291709, freezing_time: 101374, frozen_time: 163451}
"""

import os

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import require_for
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import read_manifest, sha256_file
from ansible_collections.stacklift.migrate.plugins.module_utils._container.checkpoint import (
    archive_entry, checkpoint_container, checkpoint_problems)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import SUFFIXES
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound, tcp_mode
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


class CheckpointManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.engine = engine_for_module(module)
        self.results = []
        self.diff = {"before": {}, "after": {}}

    def archive_path(self, name):
        if self.params["archive"]:
            return self.params["archive"]
        return os.path.join(self.params["archive_dir"], name + SUFFIXES[self.params["compression"]])

    def already_done(self, container, archive):
        """Checkpointed to this archive already: the engine says so and the manifest agrees."""
        state = container.get("State") or {}
        manifest = read_manifest(archive)
        return (not state.get("Running") and state.get("Checkpointed")
                and os.path.exists(archive) and manifest.get("container_id") == container["Id"]
                and manifest.get("sha256") == sha256_file(archive))

    def check(self, names):
        """Everything that can refuse, before any container is frozen."""
        containers = {}
        for name in names:
            try:
                containers[name] = self.engine.container(name)
            except NotFound:
                known = sorted(c["name"] for c in self.engine.containers())
                self.module.fail_json(msg="no container named %r on this host (containers here: %s)"
                                      % (name, ", ".join(known) or "none"), name=name)
        todo = [n for n in names if not self.already_done(containers[n], self.archive_path(n))]
        for name in todo:
            state = containers[name].get("State") or {}
            if not state.get("Running") or state.get("Paused"):
                self.module.fail_json(msg="container %r is %s, not running: only a running container can be "
                                      "checkpointed" % (name, state.get("Status", "in an unknown state")),
                                      name=name, state=state.get("Status"))
        if todo:
            info = self.engine.info()
            problems = checkpoint_problems(self.engine, todo, info=info, inspected=containers,
                                           tcp=dict.fromkeys(todo, tcp_mode(self.module.params["tcp_established"])),
                                           file_locks=self.module.params["file_locks"])
            if problems:
                self.module.fail_json(msg="; ".join(problems), problems=problems, host=info)
            self.host_info = info
        return containers, todo

    def checkpoint(self, name, container):
        p = self.params
        try:
            return checkpoint_container(
                self.engine, name, container, self.archive_path(name), self.host_info,
                compression=p["compression"], tcp=tcp_mode(p["tcp_established"]), file_locks=p["file_locks"],
                keep=p["keep"], leave_running=p["leave_running"], ignore_volumes=p["ignore_volumes"],
                ignore_rootfs=p["ignore_rootfs"], encryption_key=p["encryption_key"])
        except StackliftError as e:
            self.module.fail_json(**dict(e.fail_kwargs(), name=name))

    def run(self):
        names = self.params["name"]
        if self.params["archive"] and len(names) != 1:
            self.module.fail_json(msg="archive names one file, so it takes exactly one container; "
                                  "use archive_dir for %d containers" % len(names))
        containers, todo = self.check(names)
        for name in names:
            c = containers[name]
            archive = self.archive_path(name)
            self.diff["before"][name] = {"state": (c.get("State") or {}).get("Status")}
            if name not in todo:
                manifest = read_manifest(archive)
                self.results.append(archive_entry(name, c, archive, archive + ".stacklift.json", manifest.get("sha256"),
                                                  False, 0.0, manifest.get("timings") or {}))
            elif self.module.check_mode:
                self.results.append(archive_entry(name, c, archive, None, None, True, 0.0, {}))
            else:
                self.results.append(self.checkpoint(name, c))
            if name in todo:
                self.diff["after"][name] = {"state": "running" if self.params["leave_running"] else "checkpointed",
                                            "archive": archive}
            else:
                self.diff["after"][name] = self.diff["before"][name]
        changed = any(r["changed"] for r in self.results)
        out = dict(changed=changed, checkpoints=self.results)
        if self.module._diff:
            out["diff"] = self.diff
        self.module.exit_json(**out)


def main():
    spec = ArgumentSpec(dict(
        name=dict(type="list", elements="str", required=True, aliases=["containers"]),
        archive=dict(type="path"),
        archive_dir=dict(type="path", default="/var/lib/stacklift/checkpoints"),
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
        tcp_established=dict(type="bool", default=False),
        file_locks=dict(type="bool", default=False),
        keep=dict(type="bool", default=False),
        leave_running=dict(type="bool", default=False),
        ignore_volumes=dict(type="bool", default=False),
        ignore_rootfs=dict(type="bool", default=False),
        encryption_key=dict(type="str", no_log=True),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    require_for(module)  # before anything is frozen
    CheckpointManager(module).run()


if __name__ == "__main__":
    main()
