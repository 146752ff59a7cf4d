# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What window_source and window_target share as modules: options, services, and one way to run a window call."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "WINDOW_SPEC", "window_services", "HOST_COMMAND_TIMEOUT", "WINDOW_MARGIN", "window_command_timeout",
    "window_host", "set_nice", "run_window",
]

import os

from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import TCP_DEFAULT
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import ENGINE_SPEC, bounded_runner
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.description import with_secrets
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import Host
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import marker_path, write_note
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec


WINDOW_SPEC = ArgumentSpec(dict(
    stack=dict(type="str", required=True),
    run_id=dict(type="str", required=True),
    services=dict(type="list", elements="dict", required=True),
    secrets=dict(type="dict", no_log=True, default={}),
    tiers=dict(type="list", elements="list", required=True),
    archive_dir=dict(type="path", default="/var/lib/stacklift/checkpoints"),
    encryption_key=dict(type="str", no_log=True),
    nice=dict(type="int", default=0),
)).merge(ENGINE_SPEC)


def window_services(module):
    """{name: service} from the module's services, with their passwords from its secrets."""
    out = {}
    for svc in module.params["services"]:
        if not svc.get("name") or not svc.get("container"):
            module.fail_json(msg="each service needs name and container: %r" % (svc,))
        out[svc["name"]] = with_secrets(dict(svc, tcp=svc.get("tcp") or TCP_DEFAULT), module.params["secrets"])
    return out


# The host's own commands in a window (nft, nsenter and conntrack take milliseconds; a probe's command has
# its own timeout): one that hangs must not outlast the window.
HOST_COMMAND_TIMEOUT = 30
# What an engine command of the window (a checkpoint, a restore) leaves of the window's time, for the
# abort note and the rollback.
WINDOW_MARGIN = 30


def window_command_timeout(window_seconds):
    """How long one engine command may run inside a window of WINDOW_SECONDS."""
    return max(WINDOW_MARGIN, window_seconds - WINDOW_MARGIN)


def window_host(module, engine):
    """The Host of a window module: its engine, run_command (bounded), nsenter and nft."""
    return Host(engine, bounded_runner(module, HOST_COMMAND_TIMEOUT), nsenter=module.get_bin_path("nsenter") or "nsenter",
                nft=module.get_bin_path("nft", required=True))


def set_nice(module):
    """The module's niceness (and so that of the engine commands, CRIU and compressors it starts);
    a host that refuses a negative one (no CAP_SYS_NICE) runs the call at its own, with a warning."""
    nice = module.params.get("nice") or 0
    if not nice:
        return
    if not -20 <= nice <= 19:
        module.fail_json(msg="nice must be from -20 to 19, not %d" % nice)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as e:
        module.warn("cannot run at niceness %d here (%s); running at the host's own" % (nice, e))


def run_window(module, window, call, timeout=600.0, cleanup=None, tell=None):
    """Run CALL (one of the window's states) under the host's lock; exit or fail MODULE with its events.
    TELL, a (note kind, message), is left first for a call of the run still waiting here (for archives,
    the commit, or its window slot), which then ends: this call does not wait behind it."""
    set_nice(module)
    if tell and window.run_id:
        write_note(window.archive_dir, window.stack, tell[0], window.run_id, tell[1])
    result = dict(marker=marker_path(window.archive_dir, window.stack))
    try:
        with window.exclusive(timeout=timeout):
            events = call()
    except StackliftError as e:
        failure = dict(result, events=window.events)
        failure.update(e.fail_kwargs())
        failure.update(window.status())
        module.fail_json(**failure)
    finally:
        if cleanup:
            cleanup()
    module.exit_json(changed=bool(events), events=events, **dict(result, **window.status()))
