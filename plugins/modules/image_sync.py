#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_sync
short_description: Make sure a target host has the image a container or an archive needs
version_added: 0.1.0
description:
  - Runs on the host that has the image. Makes sure the target host has an image with the same
    ID (the content digest of its config) and name; a restore needs exactly that image.
  - When the target lacks it, the image is streamed from this host's engine straight into the
    target's engine over SSH (paramiko), with no temporary copy on either host or on the controller.
  - When the target has the image under another name only, it is tagged there.
author:
  - stacklift developers (@stacklift)
options:
  image:
    description: Image name or ID on this host.
    type: str
  container:
    description: Sync the image of this container on this host.
    type: str
  archive:
    description: Sync the image this checkpoint archive on this host needs.
    type: path
extends_documentation_fragment:
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
  - stacklift.migrate.engine.SSH_TARGET
  - stacklift.migrate.engine.SSH_CONNECTION
attributes:
  check_mode:
    support: full
    details: Compares the two hosts, changes nothing.
  diff_mode:
    support: full
seealso:
  - module: stacklift.migrate.checkpoint_transfer
  - module: stacklift.migrate.checkpoint_info
"""

EXAMPLES = r"""
- name: The target gets the image the database archive needs
  stacklift.migrate.image_sync:
    archive: /var/lib/stacklift/checkpoints/db.tar.zst
    target_host: 10.0.0.12
    key_file: /root/.ssh/id_ed25519
  delegate_to: node1
"""

RETURN = r"""
image_id:
  description: ID of the image on both hosts.
  returned: always
  type: str
  sample: "sha256:8d2a41c0f3b9"
image_name:
  description: Name of the image.
  returned: always
  type: str
  sample: "localhost/stacklift/postgres:latest"
action:
  description: V(present) (nothing to do), V(tagged) (the target had it under another name) or V(copied).
  returned: always
  type: str
  sample: "copied"
bytes:
  description: Bytes streamed to the target.
  returned: always
  type: int
  sample: 148897792
seconds:
  description: Wall time.
  returned: always
  type: float
  sample: 2.4
started_at:
  description: Epoch time the sync began.
  returned: changed
  type: float
  sample: 1764324915.412
finished_at:
  description: Epoch time the image was on the target.
  returned: changed
  type: float
  sample: 1764324917.812
"""

import time

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import (
    HAS_PARAMIKO, PARAMIKO_IMPORT_ERROR, SSH_SPEC, connect, quote, remote_run, stream_to_remote)
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.facts import read_archive
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module, make_engine)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError


def wanted_image(module, engine):
    """(image id, image name) this host must hand over."""
    p = module.params
    if p["archive"]:
        info = read_archive(p["archive"])
        image_id, name = info["image_id"], info["image_name"]
    elif p["container"]:
        c = engine.container(p["container"])
        image_id, name = c["Image"], c.get("ImageName")
    else:
        img = engine.image(p["image"])
        image_id, name = img["Id"], canonical_name(p["image"], img)
    image_id = image_id if image_id.startswith("sha256:") else "sha256:" + image_id
    try:
        engine.image(image_id)
    except NotFound:
        module.fail_json(msg="image %s (%s) is not on this host either, so it cannot be sent" % (name, image_id))
    return image_id, name


def canonical_name(ref, img):
    """The image's own full name for what the user wrote (a short name, no tag, or an ID)."""
    tags = img.get("RepoTags") or []
    for tag in tags:
        if ref in (tag, tag.rsplit(":", 1)[0]) or tag.endswith("/" + ref) or tag.endswith("/" + ref + ":latest"):
            return tag
    return tags[0] if tags else None


def has_tag(img, name):
    names = img.get("RepoTags") or img.get("Names") or []
    return not name or name in names


def main():
    spec = ArgumentSpec(dict(
        image=dict(type="str"),
        container=dict(type="str"),
        archive=dict(type="path"),
    ), required_one_of=[("image", "container", "archive")], mutually_exclusive=[("image", "container", "archive")]).merge(SSH_SPEC, ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    if not HAS_PARAMIKO:
        module.fail_json(msg=missing_required_lib("paramiko"), exception=PARAMIKO_IMPORT_ERROR)
    start = time.time()
    local = engine_for_module(module)
    client = None
    try:
        image_id, name = wanted_image(module, local)
        client = connect(module.params)

        def remote_runner(argv, data=None):
            return remote_run(client, " ".join(quote(a) for a in argv))

        # The target's engine, driven over SSH through the same Engine code.
        remote = make_engine(local.name, remote_runner, remote=True)
        result = dict(image_id=image_id, image_name=name, bytes=0)
        try:
            img = remote.image(image_id)
            action = "present" if has_tag(img, name) else "tagged"
        except NotFound:
            action = "copied"
        diff = {"before": {"image": image_id if action != "copied" else None},
                "after": {"image": image_id, "name": name}}
        if action == "present" or module.check_mode:
            module.exit_json(changed=action != "present", action=action, seconds=round(time.time() - start, 3),
                             diff=diff, **result)
        if action == "copied":
            # Save by name only when the name still points at the wanted image; the ID is what must match.
            ref = name if name and local.image(name)["Id"].endswith(image_id.split(":")[1]) else image_id
            sent = stream_to_remote(local.image_save_command(ref), client,
                                    " ".join(quote(a) for a in remote.image_load_command()))
            result["bytes"] = sent["bytes"]
            try:
                img = remote.image(image_id)
            except NotFound:
                module.fail_json(msg="the image was loaded on %s but not with ID %s: the target's engine "
                                 "rewrote it" % (module.params["target_host"], image_id), **result)
        if name and not has_tag(img, name):
            remote.tag(image_id, name)
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    finally:
        if client is not None:
            client.close()
    module.exit_json(changed=True, action=action, seconds=round(time.time() - start, 3), diff=diff,
                     started_at=start, finished_at=time.time(), **result)


if __name__ == "__main__":
    main()
