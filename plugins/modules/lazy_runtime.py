#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lazy_runtime
short_description: Install the OCI runtime wrapper that lets Podman restore a container lazily
version_added: 0.3.0
description:
  - Podman has no lazy restore. This module installs a small wrapper (a POSIX shell script) and registers it
    in a C(containers.conf.d) drop-in as Podman's C(runc). The wrapper hands every call to the host's own
    runc unchanged, except for the containers that stacklift names in C(/run/stacklift/lazy).
  - On a source, the checkpoint of such a container is split once runc wrote it. The pages that can be
    restored lazily move aside on this host (a helper, C(pages.py), installed beside the wrapper, run by the
    Python that runs this module), so that the archive crossing in the pause holds none of them. A later
    restore in place (a rollback) gets them back first.
  - On a target, the restore of such a container runs with C(--lazy-pages), and CRIU's C(lazy-pages) daemon
    fills its memory after the process runs again. It takes the pages from the checkpoint's images, or from
    the source, over the SSH connection that carried the archive.
  - On a target, the restore of a container whose changed files were staged before the fence first puts them
    into its root, each file's sha256 checked as it is copied (a second helper, C(tree.py), beside the first; the
    source's window also runs it there to receive them).
  - V(absent) removes the four files; Podman then runs the host's runc directly again.
  - Containers that stacklift does not restore see no difference; the wrapper adds one C(sh) start to each
    runtime call.
author:
  - stacklift developers (@stacklift)
options:
  state:
    description: V(present) installs and registers the wrapper, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  runtime_path:
    description:
      - The host's runc, which the wrapper runs. By default the first of C(/usr/bin/runc), C(/usr/sbin/runc),
        C(/usr/local/bin/runc) and C(/usr/local/sbin/runc) that exists.
    type: path
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Podman only. Docker's restore repacks the checkpoint through containerd's content store, and the window
    restores Docker containers eagerly.
seealso:
  - module: stacklift.migrate.window_target
"""

EXAMPLES = r"""
- name: Let this host restore containers lazily
  stacklift.migrate.lazy_runtime:

- name: Podman runs the host's runc directly again
  stacklift.migrate.lazy_runtime:
    state: absent
"""

RETURN = r"""
wrapper:
  description: Where the wrapper is.
  returned: always
  type: str
  sample: /usr/local/libexec/stacklift/runc
runtime_path:
  description: The runc it runs (when V(present)).
  returned: success
  type: str
  sample: /usr/sbin/runc
changed_files:
  description: The files written or removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/containers/containers.conf.d/50-stacklift-lazy.conf, /usr/local/libexec/stacklift/pages.py,
           /usr/local/libexec/stacklift/runc, /usr/local/libexec/stacklift/tree.py]
"""

import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import (
    WRAPPER_PATH, apply_plan, install_plan, read_text, real_runc)


def main():
    module = AnsibleModule(dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        runtime_path=dict(type="path"),
    ), supports_check_mode=True)
    present = module.params["state"] == "present"
    real = module.params["runtime_path"] or real_runc()
    if present and not real:
        module.fail_json(msg="no runc on this host (looked in /usr/bin, /usr/sbin, /usr/local/bin and /usr/local/sbin); "
                         "set runtime_path", wrapper=WRAPPER_PATH, changed_files=[])
    if present and not os.access(real, os.X_OK):
        module.fail_json(msg="runtime_path %s is not an executable" % real, wrapper=WRAPPER_PATH, changed_files=[])
    try:
        plan = install_plan(real or "/", sys.executable, present=present)
    except ValueError as e:
        module.fail_json(msg=str(e), wrapper=WRAPPER_PATH, changed_files=[])
    diff = [{"before_header": path, "after_header": path, "before": read_text(path) or "", "after": text or ""}
            for path, text in sorted(plan.items())]
    if not module.check_mode:
        apply_plan(plan)
    result = dict(changed=bool(plan), wrapper=WRAPPER_PATH, changed_files=sorted(plan), diff=diff)
    if present:
        result["runtime_path"] = real
    module.exit_json(**result)


if __name__ == "__main__":
    main()
