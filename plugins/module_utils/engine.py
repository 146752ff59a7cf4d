# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One interface to the container engines stacklift drives.

Modules never build engine commands themselves: they ask an ``Engine`` for what
they need.  ``select_engine`` picks the implementation (``engine: auto``
prefers Podman, then Docker), much as community.crypto picks a backend.
Every engine call that fails raises ``EngineError`` carrying the command, its
return code, stdout and stderr, which modules hand to ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

ENGINE_CHOICES = ["auto", "podman", "docker"]

# Linux 6.16 limited SO_PASSCRED/SO_PASSSEC to unix and netlink sockets; CRIU
# older than 4.2 fails to dump any TCP socket there (CRIU issues 2705, 2718).
CRIU_MIN = (3, 11)
CRIU_KERNEL_RULES = [((6, 16), (4, 2))]

CAP_SYS_RESOURCE = 24

# Container names as Podman and Docker accept them (and never an option: no leading "-").
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def container_name_problem(name):
    """Why NAME cannot be a container's name or ID, or None."""
    if not isinstance(name, str) or not CONTAINER_NAME.match(name):
        return "%r is not a container name (letters, digits, '_', '.', '-', not first)" % (name,)
    return None


class EngineError(Exception):
    """An engine call failed, or the engine cannot do what was asked."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr="", **details):
        super(EngineError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.details = details

    def fail_kwargs(self):
        """Keyword arguments for AnsibleModule.fail_json."""
        out = dict(msg=self.msg, rc=self.rc, stdout=self.stdout or "", stderr=self.stderr or "")
        if self.cmd:
            out["cmd"] = " ".join(self.cmd)
        out.update(self.details)
        return out


class NotFound(EngineError):
    """The container, image or network asked for does not exist."""


def parse_version(text):
    """'Version: 4.2.1' or '5.4.2' or '6.18.44-fc' -> (4, 2, 1); None if there is no version."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(x) for x in m.groups() if x is not None)


def criu_kernel_problem(criu_version, kernel_version):
    """Why this CRIU cannot checkpoint on this kernel, or None when it can."""
    if criu_version is None:
        return "CRIU is not installed (criu --version failed)"
    if criu_version < CRIU_MIN:
        return "CRIU %s is older than the %s that Podman needs" % (_v(criu_version), _v(CRIU_MIN))
    for kernel_from, criu_from in CRIU_KERNEL_RULES:
        if kernel_version and kernel_version >= kernel_from and criu_version < criu_from:
            return ("CRIU %s cannot dump TCP sockets on Linux %s (Linux %s changed SO_PASSCRED); "
                    "CRIU %s or newer is needed"
                    % (_v(criu_version), _v(kernel_version), _v(kernel_from), _v(criu_from)))
    return None


def host_criu_problem(info):
    """criu_kernel_problem for a host described by Engine.info()."""
    return criu_kernel_problem(parse_version(info.get("criu_version") or ""), parse_version(info.get("kernel") or ""))


def container_ips(container):
    """{network: address} of a container's inspect data, networks without an address left out."""
    nets = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return dict((n, v["IPAddress"]) for n, v in sorted(nets.items()) if v.get("IPAddress"))


def container_volumes(container):
    """{name: host path} of the named volumes a container's inspect data mounts."""
    return dict((m["Name"], m.get("Source")) for m in container.get("Mounts") or []
                if m.get("Type") == "volume" and m.get("Name"))


def container_address(container, network=None):
    """The address to reach a container at: on NETWORK, else its first network, else loopback."""
    ips = container_ips(container)
    if network:
        return ips.get(network)
    return next(iter(ips.values()), None) or (container.get("NetworkSettings") or {}).get("IPAddress") or "127.0.0.1"


def _v(t):
    return ".".join(str(x) for x in t)


def cap_bounding_set(status_path="/proc/self/status"):
    """The capability bounding set of this process, as an int (None if unreadable)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (IOError, OSError, ValueError):
        return None
    return None


def uid_problem(users, capbnd):
    """CRIU reads every task's rlimits; for a task of another uid that needs CAP_SYS_RESOURCE."""
    if capbnd is None or capbnd & (1 << CAP_SYS_RESOURCE):
        return None
    others = sorted(set(u for u in users if u not in ("root", "0")))
    if not others:
        return None
    return ("processes run as %s, but this host lacks CAP_SYS_RESOURCE in its capability bounding set, "
            "so CRIU cannot read their rlimits (`Can't get rlimit: Operation not permitted`); run the "
            "container's processes as uid 0 or give the host CAP_SYS_RESOURCE" % ", ".join(others))


class Engine(object):
    """What stacklift needs from a container engine.  Implementations: _podman, _docker."""

    name = None

    def info(self):
        """{'engine', 'engine_version', 'runtime', 'runtime_version', 'cgroup_version', 'kernel', 'criu_version'}"""
        raise NotImplementedError

    def container(self, name):
        """The container's inspect data; raises NotFound."""
        raise NotImplementedError

    def container_users(self, name):
        """The user names (or uids) of the container's processes."""
        raise NotImplementedError

    def checkpoint(self, name, archive, compression="zstd", tcp_established=False, file_locks=False,
                   keep=False, leave_running=False, ignore_volumes=False, ignore_rootfs=False):
        """Checkpoint to an archive; returns the engine's statistics (timings in microseconds)."""
        raise NotImplementedError

    def restore(self, archive, name=None, publish=None, ignore_static_ip=False, ignore_static_mac=False,
                tcp_established=False, tcp_close=False, file_locks=False, keep=False,
                ignore_volumes=False, ignore_rootfs=False):
        """Restore from an archive; returns the engine's statistics."""
        raise NotImplementedError

    def restore_in_place(self, name, tcp_established=False, file_locks=False):
        """Restore a checkpointed (exited) container from the checkpoint the engine kept (``keep``)."""
        raise NotImplementedError

    def remove(self, name):
        """Remove a container that is not running."""
        raise NotImplementedError

    def remove_force(self, name):
        """Kill and remove a container at once (no stop timeout)."""
        raise NotImplementedError

    def remove_volume(self, name):
        """Remove a named volume no container uses; raises NotFound when there is none."""
        raise NotImplementedError

    def image(self, ref):
        """The image's inspect data; raises NotFound."""
        raise NotImplementedError

    def image_save_command(self, ref):
        """argv that writes the image as a docker-archive to stdout (for host-to-host streams)."""
        raise NotImplementedError

    def image_load_command(self):
        """argv that loads a docker-archive from stdin."""
        raise NotImplementedError

    def tag(self, image_id, ref):
        raise NotImplementedError

    def network(self, name):
        """The network's inspect data ({'name', 'subnets': [..], 'containers': {id: ips}}); raises NotFound."""
        raise NotImplementedError

    def containers(self):
        """Every container on the host, as {'id', 'name', 'state', 'networks': {net: [ips]}}."""
        raise NotImplementedError

    def volumes(self):
        """Names of the named volumes on the host."""
        raise NotImplementedError

    def changes(self, name):
        """The container's root file system changes: {'added': [...], 'changed': [...], 'deleted': [...]}."""
        raise NotImplementedError

    def mount(self, name):
        """Mount the container's root file system (it may be stopped); returns its path."""
        raise NotImplementedError

    def unmount(self, name):
        raise NotImplementedError

    def exec_command(self, name, argv):
        """argv that runs a command inside a container."""
        raise NotImplementedError

    def criu_version(self):
        raise NotImplementedError


def _which(binary):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/sbin", "/usr/bin"]:
        p = os.path.join(d, binary)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


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


def make_engine(name, runner, binary=None):
    """The Engine called ``name``, running its commands through ``runner`` (local or over SSH)."""
    if name == "podman":
        from ansible_collections.stacklift.migrate.plugins.module_utils._podman import PodmanEngine
        return PodmanEngine(runner, binary=binary or "podman")
    raise EngineError("the %s engine is not supported yet by stacklift (Podman is); use engine=podman" % name)


ENGINE_ARGUMENT_SPEC = dict(engine=dict(type="str", default="auto", choices=ENGINE_CHOICES))


def engine_for_module(module):
    """select_engine for an AnsibleModule: commands go through run_command; failures fail the module."""

    def runner(argv, data=None):
        if data is None:
            return module.run_command(argv)
        return module.run_command(argv, data=data, binary_data=True)

    try:
        return select_engine(module.params["engine"], runner)
    except EngineError as e:
        module.fail_json(**e.fail_kwargs())
