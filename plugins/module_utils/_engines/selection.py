# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which engine a host has: ``engine: auto`` prefers Podman, then Docker, as community.crypto
selects a backend; and the glue that gives a module its engine."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["select_engine", "make_engine", "ENGINE_SPEC", "bounded_runner", "engine_for_module"]

import os

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    ENGINE_CHOICES, EngineError, which as _which)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.docker import (
    DOCKER_IMPORT_ERROR, HAS_DOCKER, DockerEngine, DockerRemote)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec


def select_engine(requested, runner, which=None):
    """Return an Engine for ``engine: auto|podman|docker``.

    ``runner(argv, data=None)`` -> (rc, stdout, stderr) runs a command on this host
    (AnsibleModule.run_command in modules, a fake in unit tests).
    """
    which = which or _which
    if requested not in ENGINE_CHOICES:
        raise EngineError("engine must be one of %s, not %r" % (", ".join(ENGINE_CHOICES), requested))
    if requested in ("auto", "podman"):
        path = which("podman")
        if path:
            return make_engine("podman", runner, binary=path)
        if requested == "podman":
            raise EngineError("engine=podman was asked for, but no podman binary is on this host's PATH")
    if requested == "docker" or which("dockerd") or os.path.exists("/var/run/docker.sock"):
        return make_engine("docker", runner)
    raise EngineError("no container engine found on this host (looked for podman and docker)")


def make_engine(name, runner, binary=None, remote=False):
    """The Engine called ``name``, running its commands through ``runner``.

    REMOTE: the engine of another host, reached through a runner over SSH (image_sync's target);
    for Docker that is the CLI's image calls, since the SDK talks to this host's daemon only."""
    if name == "podman":
        return PodmanEngine(runner, binary=binary or "podman")
    if name == "docker":
        return DockerRemote(runner) if remote else DockerEngine(runner)
    raise EngineError("unknown engine %r (stacklift has %s)" % (name, ", ".join(ENGINE_CHOICES[1:])))


ENGINE_SPEC = ArgumentSpec(dict(engine=dict(type="str", default="auto", choices=ENGINE_CHOICES)))


def bounded_runner(module, seconds=None):
    """run(argv, data=None) -> (rc, out, err) through the module's run_command; with SECONDS, each command is
    ended (coreutils' timeout: TERM, then KILL 10 s later) once it has run that long, and reports rc 124."""
    limit = module.get_bin_path("timeout") if seconds else None

    def run(argv, data=None):
        if limit:
            argv = [limit, "-k", "10", "%d" % max(1, int(seconds))] + list(argv)
        if data is None:
            return module.run_command(argv)
        return module.run_command(argv, data=data, binary_data=True)
    return run


def engine_for_module(module, requested=None, required=True, command_timeout=None):
    """select_engine for an AnsibleModule (its engine option, or REQUESTED): commands go through
    run_command (each bounded by COMMAND_TIMEOUT seconds when given); failures fail the module, or give
    None when not REQUIRED (a host without that engine)."""
    runner = bounded_runner(module, command_timeout)

    try:
        engine = select_engine(requested or module.params["engine"], runner)
    except EngineError as e:
        failure = e.fail_kwargs()
    else:
        if engine.name != "docker" or HAS_DOCKER:
            return engine
        failure = dict(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    if not required:
        return None
    module.fail_json(**failure)
