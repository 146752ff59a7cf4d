#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: checkpoint_info
short_description: Read a checkpoint archive without restoring it
version_added: 0.1.0
description:
  - Reads a container checkpoint archive (plain, gzip or zstd) on the host the task runs on and
    returns what it holds, without restoring anything.
  - With O(check_host=true) it also checks the archive against this host (runtime, CRIU,
    image, networks and subnets, name and address conflicts) and says what would block a restore.
author:
  - stacklift developers (@stacklift)
options:
  path:
    description: Path of the archive.
    type: path
    required: true
  check_host:
    description: Check whether the archive can be restored on this host.
    type: bool
    default: false
  name:
    description: Name the container would be restored under (for the name conflict check).
    type: str
  ignore_static_ip:
    description: The restore would not keep the container's addresses (skips the address checks).
    type: bool
    default: false
  ignore_volumes:
    description: The restore would not restore named volumes (skips the volume conflict check).
    type: bool
    default: false
extends_documentation_fragment:
  - stacklift.migrate.attributes.READ_ONLY
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.ENCRYPTION
seealso:
  - module: stacklift.migrate.container_checkpoint
  - module: stacklift.migrate.container_restore
"""

EXAMPLES = r"""
- name: What is in this archive, and can it be restored here?
  stacklift.migrate.checkpoint_info:
    path: /var/lib/stacklift/checkpoints/db.tar.zst
    check_host: true
  register: info

- name: Stop early when the target cannot take it
  ansible.builtin.assert:
    that: info.restorable
    fail_msg: "{{ info.blockers | join('; ') }}"
"""

RETURN = r"""
archive:
  description: What the archive holds.
  returned: always
  type: dict
  contains:
    engine:
      description:
        - The engine whose archive this is, V(podman) (Podman's export) or V(docker) (stacklift's own
          archive of a Docker container, with its inspect data, CRIU images, changed files and volumes).
      type: str
      sample: docker
    container_name:
      description: Name of the checkpointed container.
      type: str
      sample: "shop-db"
    container_id:
      description: ID of the checkpointed container.
      type: str
      sample: "3f1c0e5a9b7d"
    image_name:
      description: Image name.
      type: str
      sample: "localhost/stacklift/postgres:latest"
    image_id:
      description: Image ID (content digest of its config).
      type: str
      sample: "sha256:8d2a41c0f3b9"
    runtime:
      description: OCI runtime that made the checkpoint.
      type: str
      sample: "runc"
    networks:
      description: Networks, with the container's addresses (ips), static_ips and mac.
      type: dict
      sample: {"shopnet": {"static_ips": ["10.89.10.2"], "ips": ["10.89.10.2/24"], "mac": "8a:5e:12:34:56:78"}}
    mounts:
      description: Mounts beyond the standard ones (bind mounts, volumes).
      type: list
      sample: [{"destination": "/data", "type": "volume", "source": "/var/lib/containers/storage/volumes/shopcache/_data"}]
      elements: dict
    volumes:
      description: Named volumes.
      type: list
      sample: ["shopcache"]
      elements: str
    tcp_connections_saved:
      description: Number of established TCP connections saved in the checkpoint.
      type: int
      sample: 2
    sizes:
      description: Bytes of memory pages, rootfs diff, volumes, CRIU images, and uncompressed total.
      type: dict
      sample: {"memory_pages": 31457280, "rootfs_diff": 40960, "volumes": 10240, "criu_images": 33554432, "uncompressed": 33605632}
    archive_bytes:
      description: Size of the archive file.
      type: int
      sample: 3612345
    compression:
      description: zstd, gzip or none.
      type: str
      sample: "zstd"
    created_by:
      description:
        - Engine, engine_version, criu_version, kernel, cgroup_version, host and time, from the manifest
          written by container_checkpoint (null when there is none).
      type: dict
      sample:
        engine: podman
        engine_version: 5.4.2
        criu_version: 4.2.1
        kernel: 6.18.0
        cgroup_version: v2
        runtime_version: 1.3.0
        host: node1
        created: '2026-11-28T10:15:15Z'
    manifest_sha256:
      description: SHA-256 the manifest records for the archive.
      type: str
      sample: "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4a6b8d0f2e4a6c8b0d"
restorable:
  description: Whether nothing blocks a restore on this host.
  returned: when check_host
  type: bool
  sample: true
blockers:
  description: What would make a restore on this host fail.
  returned: when check_host
  type: list
  elements: str
  sample: ["network 'shopnet' is not on this host; create it with the same subnet first"]
warnings_found:
  description: What might go wrong but does not block.
  returned: when check_host
  type: list
  sample: ["the archive was made with CRIU 4.2.1, this host has 4.2.2"]
  elements: str
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import (
    is_encrypted, plaintext, require_for)
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.restore import host_facts, restore_blockers
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.facts import read_archive
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    spec = ArgumentSpec(dict(
        path=dict(type="path", required=True),
        check_host=dict(type="bool", default=False),
        name=dict(type="str"),
        ignore_static_ip=dict(type="bool", default=False),
        ignore_volumes=dict(type="bool", default=False),
        encryption_key=dict(type="str", no_log=True),
    )).merge(ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    path = module.params["path"]
    require_for(module)
    try:
        with plaintext(path, module.params["encryption_key"]) as plain:
            info = read_archive(plain, original=path)
        facts = host_facts(engine_for_module(module), info) if module.params["check_host"] else None
    except StackliftError as e:
        module.fail_json(**dict(e.fail_kwargs(), encrypted=is_encrypted(path)))
    result = dict(changed=False, archive=info)
    if module.params["check_host"]:
        blockers, warnings = restore_blockers(info, facts, name=module.params["name"],
                                              ignore_static_ip=module.params["ignore_static_ip"],
                                              ignore_volumes=module.params["ignore_volumes"])
        result.update(restorable=not blockers, blockers=blockers, warnings_found=warnings)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
