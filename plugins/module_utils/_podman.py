# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Podman engine: the podman CLI, run through the module's run_command."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.stacklift.migrate.plugins.module_utils.engine import (
    Engine, EngineError, NotFound, parse_version)

COMPRESSIONS = ["zstd", "gzip", "none"]

# Podman's wording when a thing is missing; it exits 125 for these as for other errors.
_MISSING = ("no such container", "no such object", "no such image", "image not known",
            "unable to find network", "network not found", "no such network", "no such volume")


class PodmanEngine(Engine):
    name = "podman"

    def __init__(self, runner, binary="podman"):
        self.runner = runner
        self.binary = binary

    # -- plumbing -------------------------------------------------------
    def _run(self, args, what, data=None, missing=None):
        cmd = [self.binary] + list(args)
        rc, out, err = self.runner(cmd, data=data) if data is not None else self.runner(cmd)
        if rc != 0:
            if missing and any(m in (err or "").lower() for m in _MISSING):
                raise NotFound(missing, cmd=cmd, rc=rc, stdout=out, stderr=err)
            raise EngineError("%s failed: %s" % (what, (err or out or "").strip().splitlines()[-1:] or ""),
                              cmd=cmd, rc=rc, stdout=out, stderr=err)
        return out

    def _json(self, args, what, missing=None):
        out = self._run(args, what, missing=missing)
        try:
            return json.loads(out) if out.strip() else None
        except ValueError:
            raise EngineError("%s: podman printed no JSON" % what, cmd=[self.binary] + list(args), stdout=out)

    # -- Engine ---------------------------------------------------------
    def info(self):
        info = self._json(["info", "--format", "json"], "podman info")
        host = info.get("host", {})
        runtime = host.get("ociRuntime", {})
        version = self._json(["version", "--format", "json"], "podman version")
        return {
            "engine": "podman",
            "engine_version": (version.get("Client") or version).get("Version"),
            "runtime": runtime.get("name"),
            "runtime_version": parse_version(runtime.get("version", "")) and
            ".".join(str(x) for x in parse_version(runtime.get("version", ""))),
            "cgroup_version": host.get("cgroupVersion"),
            "cgroup_manager": host.get("cgroupManager"),
            "kernel": host.get("kernel"),
            "arch": host.get("arch"),
            "criu_version": self.criu_version(),
        }

    def criu_version(self):
        rc, out, err = self.runner(["criu", "--version"])
        v = parse_version(out) if rc == 0 else None
        return ".".join(str(x) for x in v) if v else None

    def container(self, name):
        data = self._json(["container", "inspect", "--", name], "podman container inspect",
                          missing="no container named %r on this host" % name)
        if not data:
            raise NotFound("no container named %r on this host" % name)
        return data[0]

    def container_users(self, name):
        out = self._run(["top", "--", name, "huser"], "podman top")
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    def checkpoint(self, name, archive, compression="zstd", tcp_established=False, file_locks=False,
                   keep=False, leave_running=False, ignore_volumes=False, ignore_rootfs=False):
        if compression not in COMPRESSIONS:
            raise EngineError("compression must be one of %s" % ", ".join(COMPRESSIONS))
        args = ["container", "checkpoint", "--export", archive, "--compress", compression, "--print-stats"]
        args += _flags(tcp_established=tcp_established, file_locks=file_locks, keep=keep,
                       leave_running=leave_running, ignore_volumes=ignore_volumes, ignore_rootfs=ignore_rootfs)
        return _stats(self._run(args + ["--", name], "podman container checkpoint %s" % name))

    def restore(self, archive, name=None, publish=None, ignore_static_ip=False, ignore_static_mac=False,
                tcp_established=False, tcp_close=False, file_locks=False, keep=False,
                ignore_volumes=False, ignore_rootfs=False):
        args = ["container", "restore", "--import", archive, "--print-stats"]
        if name:
            args += ["--name", name]
        for p in publish or []:
            args += ["--publish", p]
        args += _flags(ignore_static_ip=ignore_static_ip, ignore_static_mac=ignore_static_mac,
                       tcp_established=tcp_established, tcp_close=tcp_close, file_locks=file_locks,
                       keep=keep, ignore_volumes=ignore_volumes, ignore_rootfs=ignore_rootfs)
        return _stats(self._run(args, "podman container restore %s" % archive))

    def restore_in_place(self, name, tcp_established=False, file_locks=False):
        args = ["container", "restore", "--print-stats"]
        args += _flags(tcp_established=tcp_established, file_locks=file_locks)
        return _stats(self._run(args + ["--", name], "podman container restore %s" % name))

    def remove(self, name):
        self._run(["rm", "--", name], "podman rm %s" % name)

    def remove_force(self, name):
        self._run(["rm", "-f", "-t", "0", "--", name], "podman rm -f %s" % name, missing="no container %r" % name)

    def remove_volume(self, name):
        self._run(["volume", "rm", "--", name], "podman volume rm %s" % name, missing="no volume %r" % name)

    def image(self, ref):
        data = self._json(["image", "inspect", "--", ref], "podman image inspect",
                          missing="no image %r on this host" % ref)
        if not data:
            raise NotFound("no image %r on this host" % ref)
        return data[0]

    def image_save_command(self, ref):
        # docker-archive keeps the image config byte for byte, so the ID stays the same.
        return [self.binary, "save", "--format", "docker-archive", "-o", "/dev/stdout", ref]

    def image_load_command(self):
        return [self.binary, "load", "-q"]

    def tag(self, image_id, ref):
        self._run(["tag", "--", image_id, ref], "podman tag")

    def network(self, name):
        data = self._json(["network", "inspect", "--", name], "podman network inspect",
                          missing="no network named %r on this host" % name)
        if not data:
            raise NotFound("no network named %r on this host" % name)
        net = data[0]
        containers = {}
        for cid, c in (net.get("containers") or {}).items():
            ips = []
            for iface in (c.get("interfaces") or {}).values():
                ips += [s["ipnet"].split("/")[0] for s in iface.get("subnets") or []]
            containers[cid] = {"name": c.get("name"), "ips": ips}
        return {"name": net["name"], "subnets": [s["subnet"] for s in net.get("subnets") or []],
                "containers": containers}

    def containers(self):
        data = self._json(["ps", "-a", "--format", "json"], "podman ps") or []
        return [{"id": c["Id"], "name": (c.get("Names") or [""])[0], "state": c.get("State"),
                 "networks": c.get("Networks") or []} for c in data]

    def volumes(self):
        return sorted(v["Name"] for v in self._json(["volume", "ls", "--format", "json"], "podman volume ls") or [])

    def changes(self, name):
        data = self._json(["diff", "--format", "json", "--", name], "podman diff") or {}
        return {"added": data.get("added") or [], "changed": data.get("changed") or [],
                "deleted": data.get("deleted") or []}

    def mount(self, name):
        return self._run(["mount", "--", name], "podman mount").strip()

    def unmount(self, name):
        self._run(["unmount", "--", name], "podman unmount")

    def exec_command(self, name, argv):
        return [self.binary, "exec", "--", name] + list(argv)


def _flags(**flags):
    return ["--" + k.replace("_", "-") for k, v in sorted(flags.items()) if v]


def _stats(out):
    """podman --print-stats JSON -> a flat dict of timings (microseconds)."""
    try:
        data = json.loads(out)
    except ValueError:
        return {}
    stats = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
    for c in data.get("container_statistics") or []:
        stats.update({k: v for k, v in c.items() if k != "Id" and not isinstance(v, dict)})
        stats.update(c.get("criu_statistics") or {})
    return stats
