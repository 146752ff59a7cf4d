#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: container_restore
short_description: Restore a container from a checkpoint archive
version_added: 0.1.0
description:
  - Restores a container, with its memory, open files and (optionally) TCP connections, from an
    archive made by C(stacklift.migrate.container_checkpoint), on the host the task runs on.
  - Before anything starts it verifies the archive's sha256 (against O(sha256), and against the
    manifest when there is one) and checks the host - the image is here, the networks exist with
    subnets that hold the container's addresses, the name and the addresses are free, and CRIU
    can restore on this kernel - and fails with every problem it found.
  - Idempotent. A container already running from this archive (the same restore, recorded by
    sha256 under O(state_dir)) reports unchanged.
author:
  - stacklift developers (@stacklift)
options:
  archive:
    description: Path of the archive on this host.
    type: path
    required: true
  name:
    description: Name for the restored container. Defaults to the name it was checkpointed under,
      and then it keeps its ID too.
    type: str
  publish:
    description: Ports to publish, as for C(podman run --publish).
    type: list
    elements: str
  ignore_static_ip:
    description: Do not keep the container's IP addresses.
    type: bool
    default: false
  ignore_static_mac:
    description: Do not keep the container's MAC addresses.
    type: bool
    default: false
  tcp_established:
    description: Restore established TCP connections. The archive must have been made with them.
    type: bool
    default: false
  tcp_close:
    description: Close the TCP connections the archive holds instead of restoring them.
    type: bool
    default: false
  file_locks:
    description: Restore file locks.
    type: bool
    default: false
  keep:
    description: Keep the engine's restore logs and images.
    type: bool
    default: false
  ignore_volumes:
    description: Do not restore the content of named volumes from the archive.
    type: bool
    default: false
  ignore_rootfs:
    description: Do not restore the root file system changes from the archive.
    type: bool
    default: false
  sha256:
    description: Expected SHA-256 of the archive, checked before anything starts.
    type: str
  replace:
    description: Remove a stopped or exited container that holds the name (or the archive's
      container ID) first, as after a checkpoint on the same host. A running one is never removed.
    type: bool
    default: false
  state_dir:
    description: Where the module records what it restored, for idempotence.
    type: path
    default: /var/lib/stacklift/restored
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.ENCRYPTION
attributes:
  check_mode:
    support: full
    details: Verifies and checks everything, restores nothing.
  diff_mode:
    support: full
seealso:
  - module: stacklift.migrate.container_checkpoint
  - module: stacklift.migrate.checkpoint_info
  - module: stacklift.migrate.service_probe
"""

EXAMPLES = r"""
- name: Restore the database with its TCP connections, checking the archive first
  stacklift.migrate.container_restore:
    archive: /var/lib/stacklift/checkpoints/db.tar.zst
    sha256: "{{ ckpt.checkpoints[0].sha256 }}"
    tcp_established: true
    file_locks: true

- name: Roll back on the source host, replacing the exited container
  stacklift.migrate.container_restore:
    archive: /var/lib/stacklift/checkpoints/db.tar.zst
    tcp_established: true
    replace: true
"""

RETURN = r"""
container:
  description: The restored container.
  returned: success
  type: dict
  contains:
    id:
      description: Container ID.
      type: str
      sample: "7a0d2c4e6f81"
    name:
      description: Container name.
      type: str
      sample: "shop-db"
    state:
      description: Container state after the restore.
      type: str
      sample: running
    ips:
      description: Addresses by network.
      type: dict
      sample: {shopnet: ["10.89.0.3"]}
sha256:
  description: SHA-256 of the archive.
  returned: always
  type: str
  sample: "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4a6b8d0f2e4a6c8b0d"
seconds:
  description: Wall time of the restore.
  returned: changed
  type: float
  sample: 0.61
timings:
  description: The engine's and CRIU's restore statistics, in microseconds.
  returned: changed
  type: dict
  sample: {"podman_restore_duration": 402113, "runtime_restore_duration": 351876, "forking_time": 210, "restore_time": 98432, "pages_restored": 7680}
started_at:
  description: Epoch time the restore began.
  returned: changed
  type: float
  sample: 1764324915.912
finished_at:
  description: Epoch time the container was restored.
  returned: changed
  type: float
  sample: 1764324916.5219998
blockers:
  description: What blocked the restore (the module failed).
  returned: failure
  type: list
  sample: ["image sha256:8d2a41c0f3b9 is not on this host; sync it first (image_sync)"]
  elements: str
"""

import json
import os
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import plaintext, require_for
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import read_manifest, sha256_file
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.restore import host_facts, restore_blockers
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.facts import read_archive
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound, container_ips, tcp_mode
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


class RestoreManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.engine = engine_for_module(module)

    def record_path(self, digest):
        return os.path.join(self.params["state_dir"], "%s.json" % digest)

    def running_from_archive(self, info, digest, wanted):
        """The container this archive was restored into, if it is running here now."""
        try:
            c = self.engine.container(wanted)
        except NotFound:
            return None
        if not (c.get("State") or {}).get("Running"):
            return None
        if not os.path.exists(self.record_path(digest)):
            return None
        with open(self.record_path(digest)) as f:
            record = json.load(f)
        return c if c["Id"] == record.get("container_id") else None

    def describe(self, c):
        return {"id": c["Id"], "name": c.get("Name"), "state": (c.get("State") or {}).get("Status"),
                "ips": {n: [ip] for n, ip in container_ips(c).items()}}

    def run(self):
        p = self.params
        archive = p["archive"]
        if not os.path.isfile(archive):
            self.module.fail_json(msg="no checkpoint archive at %s" % archive)
        digest = sha256_file(archive)
        if p["sha256"] and p["sha256"].lower() != digest:
            self.module.fail_json(msg="%s has sha256 %s, expected %s: not restoring a damaged or different archive"
                                  % (archive, digest, p["sha256"]), sha256=digest)
        recorded = read_manifest(archive).get("sha256")
        if recorded and recorded != digest:
            self.module.fail_json(msg="%s has sha256 %s, but its manifest records %s: the archive changed since "
                                  "it was made" % (archive, digest, recorded), sha256=digest)
        require_for(self.module)
        try:
            with plaintext(archive, p["encryption_key"]) as plain:
                return self.restore(plain, archive, digest)
        except StackliftError as e:
            self.module.fail_json(**dict(e.fail_kwargs(), sha256=digest))

    def restore(self, plain, archive, digest):
        """Restore from PLAIN (ARCHIVE, decrypted when it was encrypted)."""
        p = self.params
        info = read_archive(plain, original=archive)
        wanted = p["name"] or info["container_name"]
        current = self.running_from_archive(info, digest, wanted)
        if current:
            self.module.exit_json(changed=False, container=self.describe(current), sha256=digest)
        facts = host_facts(self.engine, info)
        in_the_way = []
        if p["replace"]:
            # After a checkpoint on this host the exited container still holds its name and ID.
            in_the_way = [c for c in facts["containers"] if c["state"] != "running"
                          and (c["name"] == wanted or c["id"] == info["container_id"])]
            facts["containers"] = [c for c in facts["containers"] if c not in in_the_way]
            for net in facts["networks"].values():
                for c in in_the_way:
                    if net:
                        net["containers"].pop(c["id"], None)
        blockers, warnings = restore_blockers(info, facts, name=p["name"], ignore_static_ip=p["ignore_static_ip"],
                                              ignore_volumes=p["ignore_volumes"])
        if blockers:
            self.module.fail_json(msg="cannot restore %s here: %s" % (archive, "; ".join(blockers)),
                                  blockers=blockers, sha256=digest)
        for w in warnings:
            self.module.warn(w)
        diff = {"before": {"container": None}, "after": {"container": wanted, "state": "running"}}
        if self.module.check_mode:
            self.module.exit_json(changed=True, sha256=digest, container={"name": wanted, "state": "running"},
                                  diff=diff)
        for c in in_the_way:
            self.engine.remove(c["id"])
        start = time.time()
        stats = self.engine.restore(
            plain, name=p["name"], publish=p["publish"], ignore_static_ip=p["ignore_static_ip"],
            ignore_static_mac=p["ignore_static_mac"], tcp=tcp_mode(p["tcp_established"], p["tcp_close"]),
            file_locks=p["file_locks"], keep=p["keep"],
            ignore_volumes=p["ignore_volumes"], ignore_rootfs=p["ignore_rootfs"])
        seconds = round(time.time() - start, 3)
        restored = self.engine.container(wanted)
        self.record(archive, digest, wanted, restored, dict(timings=stats, diff=diff, seconds=seconds,
                                                            started_at=start, finished_at=start + seconds))

    def record(self, archive, digest, wanted, restored, result):
        """Remember which container this archive became (idempotence), and exit."""
        p = self.params
        if not os.path.isdir(p["state_dir"]):
            os.makedirs(p["state_dir"], 0o700)
        with open(self.record_path(digest), "w") as f:
            json.dump({"container_id": restored["Id"], "name": wanted, "archive": archive,
                       "restored": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f)
        self.module.exit_json(changed=True, container=self.describe(restored), sha256=digest, **result)


def main():
    spec = ArgumentSpec(dict(
        archive=dict(type="path", required=True),
        name=dict(type="str"),
        publish=dict(type="list", elements="str"),
        ignore_static_ip=dict(type="bool", default=False),
        ignore_static_mac=dict(type="bool", default=False),
        tcp_established=dict(type="bool", default=False),
        tcp_close=dict(type="bool", default=False),
        file_locks=dict(type="bool", default=False),
        keep=dict(type="bool", default=False),
        ignore_volumes=dict(type="bool", default=False),
        ignore_rootfs=dict(type="bool", default=False),
        sha256=dict(type="str"),
        replace=dict(type="bool", default=False),
        state_dir=dict(type="path", default="/var/lib/stacklift/restored"),
        encryption_key=dict(type="str", no_log=True),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    # Checked by hand: mutually_exclusive would count an explicit false as set.
    if module.params["tcp_established"] and module.params["tcp_close"]:
        module.fail_json(msg="tcp_established and tcp_close exclude each other: restore the connections or close them")
    RestoreManager(module).run()


if __name__ == "__main__":
    main()
