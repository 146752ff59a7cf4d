#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: checkpoint_transfer
short_description: Move a checkpoint archive straight from one host to another
version_added: 0.1.0
description:
  - Runs on the host that holds the archive and sends it to the target host over SSH
    (paramiko, SFTP). The data goes host to host; the controller is not a hop.
  - The archive is written on the target under a temporary name, its sha256 is checked there,
    and only then is it renamed to O(dest). An interrupted or damaged transfer never leaves a
    file under the final name.
  - The manifest written by C(stacklift.migrate.container_checkpoint) goes along.
  - Idempotent; when O(dest) on the target already has the same sha256 nothing is sent.
author:
  - stacklift developers (@stacklift)
options:
  src:
    description: Path of the archive on the host the task runs on.
    type: path
    required: true
  dest:
    description: Path on the target. Defaults to O(src). Its directory is created mode 0700.
    type: path
  sha256:
    description: Expected SHA-256 of the archive. Defaults to what the manifest records, else it is computed.
    type: str
  with_manifest:
    description: Send the manifest (C(SRC.stacklift.json)) too, when there is one.
    type: bool
    default: true
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.SSH_TARGET
  - stacklift.migrate.engine.SSH_CONNECTION
attributes:
  check_mode:
    support: full
    details: Connects and compares checksums, sends nothing.
  diff_mode:
    support: none
seealso:
  - module: stacklift.migrate.image_sync
  - module: stacklift.migrate.container_restore
"""

EXAMPLES = r"""
- name: Send the database archive from node1 to node2
  stacklift.migrate.checkpoint_transfer:
    src: /var/lib/stacklift/checkpoints/db.tar.zst
    target_host: 10.0.0.12
    key_file: /root/.ssh/id_ed25519
  delegate_to: node1
"""

RETURN = r"""
dest:
  description: Path of the archive on the target.
  returned: always
  type: str
  sample: "/var/lib/stacklift/checkpoints/shop-db.tar.zst"
sha256:
  description: SHA-256 of the archive, as checked on the target.
  returned: always
  type: str
  sample: "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4a6b8d0f2e4a6c8b0d"
bytes:
  description: Bytes sent (0 when the target already had the archive).
  returned: always
  type: int
  sample: 3612345
seconds:
  description: Wall time of the transfer, checks included.
  returned: always
  type: float
  sample: 0.21
mb_per_s:
  description: Throughput in MB/s.
  returned: changed
  type: float
  sample: 17.2
started_at:
  description: Epoch time the transfer began.
  returned: changed
  type: float
  sample: 1764324915.412
finished_at:
  description: Epoch time the archive was in place on the target.
  returned: changed
  type: float
  sample: 1764324915.622
"""

import os
import time

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import (
    HAS_PARAMIKO, PARAMIKO_IMPORT_ERROR, SSH_SPEC, connect, push_file, remote_sha256)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    MANIFEST_SUFFIX, read_manifest, sha256_file)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def main():
    spec = ArgumentSpec(dict(
        src=dict(type="path", required=True),
        dest=dict(type="path"),
        sha256=dict(type="str"),
        with_manifest=dict(type="bool", default=True),
    )).merge(SSH_SPEC)
    module = spec.create_module(supports_check_mode=True)
    if not HAS_PARAMIKO:
        module.fail_json(msg=missing_required_lib("paramiko"), exception=PARAMIKO_IMPORT_ERROR)
    p = module.params
    src, dest = p["src"], p["dest"] or p["src"]
    if not os.path.isfile(src):
        module.fail_json(msg="no archive at %s on this host" % src)
    start = time.time()
    digest = sha256_file(src)
    expected = (p["sha256"] or read_manifest(src).get("sha256") or digest).lower()
    if expected != digest:
        module.fail_json(msg="%s has sha256 %s here already, expected %s: not sending it" % (src, digest, expected),
                         sha256=digest)
    manifest = src + MANIFEST_SUFFIX
    send_manifest = p["with_manifest"] and os.path.exists(manifest)
    client = None
    try:
        client = connect(p)
        up_to_date = remote_sha256(client, dest) == digest
        if send_manifest:
            up_to_date = up_to_date and remote_sha256(client, dest + MANIFEST_SUFFIX) == sha256_file(manifest)
        if up_to_date or module.check_mode:
            module.exit_json(changed=not up_to_date, dest=dest, sha256=digest, bytes=0,
                             seconds=round(time.time() - start, 3))
        sent = push_file(client, src, dest, digest)
        if send_manifest:
            push_file(client, manifest, dest + MANIFEST_SUFFIX, sha256_file(manifest))
    except StackliftError as e:
        module.fail_json(**dict(e.fail_kwargs(), dest=dest, sha256=digest))
    finally:
        if client is not None:
            client.close()
    seconds = round(time.time() - start, 3)
    module.exit_json(changed=True, dest=dest, sha256=digest, bytes=sent["bytes"], seconds=seconds,
                     mb_per_s=round(sent["bytes"] / 1e6 / max(sent["seconds"], 1e-6), 1),
                     started_at=start, finished_at=time.time())


if __name__ == "__main__":
    main()
