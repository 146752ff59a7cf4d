# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine interface every container engine implements, and what is read from its answers.

One file an engine (podman.py, docker.py), chosen by selection.py, in the shape of
community.crypto's backends. Modules never build engine commands themselves: they ask an
``Engine``. Every engine call that fails raises ``EngineError`` carrying the command, its return
code, stdout and stderr, which modules hand to ``fail_json``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "ENGINE_CHOICES", "TCP_MODES", "TCP_DEFAULT", "tcp_mode", "EngineError", "NotFound", "which", "parse_version",
    "container_ips", "container_volumes", "container_address", "ImageStore", "Engine",
]

import abc
import os
import re
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

ENGINE_CHOICES = ["auto", "podman", "docker"]
# How a container's TCP connections cross its move, from the stack's ``tcp`` to the engine's call, in this one
# shape: "established" (CRIU saves them and puts them back), "close" (restored closed), None (it must have none).
TCP_MODES = ("established", "close")
TCP_DEFAULT = "established"


def tcp_mode(established=False, close=False):
    """The TCP mode a module's tcp_established and tcp_close options ask for."""
    return "established" if established else ("close" if close else None)


class EngineError(StackliftError):
    """An engine call failed, or the engine cannot do what was asked."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr="", **details):
        super().__init__(msg, **details)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def fail_kwargs(self):
        """Keyword arguments for AnsibleModule.fail_json."""
        out = dict(msg=self.msg, rc=self.rc, stdout=self.stdout or "", stderr=self.stderr or "")
        if self.cmd:
            out["cmd"] = " ".join(self.cmd)
        out.update(self.details)
        return out


class NotFound(EngineError):
    """The container, image or network asked for does not exist."""


def which(binary):
    """Path of an executable BINARY on this host (PATH, then the usual system directories), or None."""
    usual = ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"]
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + usual:
        p = os.path.join(d, binary)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def parse_version(text):
    """'Version: 4.2.1' or '5.4.2' or '6.18.44-fc' -> (4, 2, 1); None if there is no version."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(x) for x in m.groups() if x is not None)


def container_ips(container):
    """{network: address} of a container's inspect data, networks without an address left out."""
    nets = (container.get("NetworkSettings") or {}).get("Networks") or {}
    return {n: v["IPAddress"] for n, v in sorted(nets.items()) if v.get("IPAddress")}


def container_volumes(container):
    """{name: host path} of the named volumes a container's inspect data mounts."""
    return {m["Name"]: m.get("Source") for m in container.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name")}


def container_address(container, network=None):
    """The address to reach a container at: on NETWORK, else its first network, else loopback."""
    ips = container_ips(container)
    if network:
        return ips.get(network)
    return next(iter(ips.values()), None) or (container.get("NetworkSettings") or {}).get("IPAddress") or "127.0.0.1"


class ImageStore(abc.ABC):
    """What image_sync needs of the engine on the other host: an image's inspect data, the argv that
    loads an image, a tag. Every Engine is one; DockerRemote (docker.py) is only this."""

    name = None

    @abc.abstractmethod
    def image(self, ref):
        """The image's inspect data; raises NotFound."""

    @abc.abstractmethod
    def image_load_command(self):
        """argv that loads a docker-archive from stdin."""

    @abc.abstractmethod
    def tag(self, image_id, ref):
        """Give the image IMAGE_ID the name REF."""


class Engine(ImageStore):
    """What stacklift needs from a container engine: the interface every engine implements (podman.py
    with the CLI, docker.py with the Engine API), decided by ``selection``."""

    @abc.abstractmethod
    def info(self):
        """{'engine', 'engine_version', 'runtime', 'runtime_version', 'cgroup_version', 'kernel', 'criu_version'}"""

    @abc.abstractmethod
    def container(self, name):
        """The container's inspect data; raises NotFound."""

    def containers_named(self, names):
        """{name: its inspect data, or None when there is no such container} for each of NAMES.
        An engine that can inspect many at once in one call overrides this."""
        found = {}
        for name in names:
            try:
                found[name] = self.container(name)
            except NotFound:
                found[name] = None
        return found

    @abc.abstractmethod
    def container_users(self, name):
        """The user names (or uids) of the container's processes."""

    @abc.abstractmethod
    def checkpoint(self, name, archive, compression="zstd", tcp=None, file_locks=False,
                   keep=False, leave_running=False, ignore_volumes=False, ignore_rootfs=False):
        """Checkpoint to an archive; returns the engine's statistics (timings in microseconds)."""

    @abc.abstractmethod
    def restore(self, archive, name=None, publish=None, ignore_static_ip=False, ignore_static_mac=False,
                tcp=None, file_locks=False, keep=False,
                ignore_volumes=False, ignore_rootfs=False):
        """Restore from an archive; returns the engine's statistics."""

    @abc.abstractmethod
    def restore_in_place(self, name, tcp=None, file_locks=False):
        """Restore a checkpointed (exited) container from the checkpoint the engine kept (``keep``)."""

    @abc.abstractmethod
    def remove(self, name):
        """Remove a container that is not running."""

    @abc.abstractmethod
    def remove_force(self, name):
        """Kill and remove a container at once (no stop timeout)."""

    @abc.abstractmethod
    def remove_volume(self, name):
        """Remove a named volume no container uses; raises NotFound when there is none."""

    @abc.abstractmethod
    def image_save_command(self, ref):
        """argv that writes the image as a docker-archive to stdout (for host-to-host streams)."""

    @abc.abstractmethod
    def network(self, name):
        """The network's inspect data ({'name', 'subnets': [..], 'containers': {id: ips}}); raises NotFound."""

    @abc.abstractmethod
    def create_network(self, name, subnets):
        """Create a network with SUBNETS (the engine chooses when there are none)."""

    @abc.abstractmethod
    def remove_network(self, name):
        """Remove a network no container uses; raises NotFound when there is none."""

    @abc.abstractmethod
    def containers(self):
        """Every container on the host, as {'id', 'name', 'state', 'networks': {net: [ips]}}."""

    @abc.abstractmethod
    def volumes(self):
        """Names of the named volumes on the host."""

    @abc.abstractmethod
    def changes(self, name):
        """The container's root file system changes: {'added': [...], 'changed': [...], 'deleted': [...]}."""

    @abc.abstractmethod
    def mount(self, name):
        """Mount the container's root file system (it may be stopped); returns its path."""

    @abc.abstractmethod
    def unmount(self, name):
        """Unmount what ``mount`` mounted."""

    @abc.abstractmethod
    def criu_version(self):
        """The version of the CRIU this engine runs, as a string."""

    def complete_archive(self, name, archive):
        """Fix what the engine's export leaves out of ARCHIVE (the container is checkpointed and
        stopped); returns the paths added. Engines whose archives are whole need nothing."""
        return []
