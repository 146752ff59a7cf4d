# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Podman engine: the podman CLI, run through the module's run_command.

Its workaround lives here too: Podman's export leaves out of rootfs-diff.tar the changed files
that do not exist at the same path on the host (it calls os.Stat on the host's path, not the
container's); ``complete_archive`` puts them in, read inside the container's root."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "COMPRESSIONS", "PodmanEngine", "podman_kept", "rootfs_diff_names", "ENGINE_MANAGED", "in_root",
    "rootfs_gaps", "add_rootfs_files",
]

import json
import os
import tarfile

from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    ArchiveError, TarStream, compression_of, open_writer as _open_writer)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
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

    def containers_named(self, names):
        """One podman call for all of NAMES: it prints those it finds, and exits 125 naming the others."""
        names = list(names)
        if not names:
            return {}
        cmd = [self.binary, "container", "inspect", "--"] + names
        rc, out, err = self.runner(cmd)
        errors = [line for line in (err or "").splitlines() if line.strip()]
        if rc != 0 and (not errors or not all("no such container" in line.lower() for line in errors)):
            raise EngineError("podman container inspect failed: %s" % (errors[-1:] or [out.strip()]),
                              cmd=cmd, rc=rc, stdout=out, stderr=err)
        try:
            data = json.loads(out) if out.strip() else []
        except ValueError:
            raise EngineError("podman container inspect: podman printed no JSON", cmd=cmd, stdout=out)
        found = {}
        for name in names:
            found[name] = (next((c for c in data if c.get("Name") == name), None)
                           or next((c for c in data if c.get("Id", "").startswith(name)), None))
        return found

    def container_users(self, name):
        out = self._run(["top", "--", name, "huser"], "podman top")
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    def checkpoint(self, name, archive, compression="zstd", tcp=None, file_locks=False,
                   keep=False, leave_running=False, ignore_volumes=False, ignore_rootfs=False):
        if compression not in COMPRESSIONS:
            raise EngineError("compression must be one of %s" % ", ".join(COMPRESSIONS))
        args = ["container", "checkpoint", "--export", archive, "--compress", compression, "--print-stats"]
        args += _flags(tcp_established=tcp == "established", file_locks=file_locks, keep=keep,
                       leave_running=leave_running, ignore_volumes=ignore_volumes, ignore_rootfs=ignore_rootfs)
        return _stats(self._run(args + ["--", name], "podman container checkpoint %s" % name))

    def restore(self, archive, name=None, publish=None, ignore_static_ip=False, ignore_static_mac=False,
                tcp=None, file_locks=False, keep=False,
                ignore_volumes=False, ignore_rootfs=False):
        args = ["container", "restore", "--import", archive, "--print-stats"]
        if name:
            args += ["--name", name]
        for p in publish or []:
            args += ["--publish", p]
        args += _flags(ignore_static_ip=ignore_static_ip, ignore_static_mac=ignore_static_mac,
                       tcp_established=tcp == "established", tcp_close=tcp == "close", file_locks=file_locks,
                       keep=keep, ignore_volumes=ignore_volumes, ignore_rootfs=ignore_rootfs)
        return _stats(self._run(args, "podman container restore %s" % archive))

    def restore_in_place(self, name, tcp=None, file_locks=False):
        args = ["container", "restore", "--print-stats"]
        args += _flags(tcp_established=tcp == "established", file_locks=file_locks)
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

    def create_network(self, name, subnets):
        args = ["network", "create"]
        for subnet in subnets or []:
            args += ["--subnet", subnet]
        self._run(args + ["--", name], "podman network create %s" % name)

    def remove_network(self, name):
        self._run(["network", "rm", "--", name], "podman network rm %s" % name, missing="no network %r" % name)

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

    def complete_archive(self, name, archive):
        """Put into ARCHIVE the changed files Podman's rootfs diff leaves out; returns their paths."""
        changed = self.changes(name)["changed"]
        in_diff = podman_kept(changed)
        rootfs = self.mount(name)
        try:
            gaps = rootfs_gaps(changed, in_diff, rootfs)
            if gaps:
                add_rootfs_files(archive, rootfs, gaps)
        finally:
            self.unmount(name)
        return gaps


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


# Podman builds rootfs-diff.tar with checkpointctl's CRCreateRootFsDiffTar, which keeps a
# changed ("C") file only if os.Stat(path) succeeds for the path on the *host* rather than in
# the container. A file the container changed from its image (a database's data files, say) is
# then left out unless the host happens to have a file at the same path, and the restore brings
# back the image's version: CRIU refuses it when the file is open with another size ("has bad
# size"), and a closed one silently goes back in time. These functions find such files and put
# them into the archive.

def podman_kept(changed, exists=os.path.exists):
    """The changed paths Podman's export keeps in rootfs-diff.tar: those that os.Stat finds *on the
    host* (the bug above). Predicting it spares reading a large archive back to find out."""
    return set(p for p in changed if exists(p))


def rootfs_diff_names(path):
    """Paths (with a leading /) in the archive's rootfs-diff.tar."""
    names = set()
    with TarStream(path) as tar:
        for m in tar:
            if m.name.lstrip("./") == "rootfs-diff.tar":
                inner = tarfile.open(fileobj=tar.extractfile(m), mode="r|")
                names.update("/" + i.name.lstrip("./") for i in inner)
                break
    return names


# Files the engine bind-mounts into every container and makes anew on restore.
ENGINE_MANAGED = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv")


def in_root(rootfs, path, max_links=40):
    """Where PATH of the container is on the host: its directories resolved inside ROOTFS.

    Symlinks among the directories are followed as the container sees them (an absolute target
    starts again at ROOTFS, ".." stops at it), so a container's "data -> /etc" never reaches the
    host's /etc. The last component is not followed: a symlink is archived as a symlink.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        return rootfs
    done = []
    todo = parts[:-1]
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(rootfs, *(done + [part]))
        if os.path.islink(candidate):
            links += 1
            if links > max_links:
                raise ArchiveError("too many symlinks resolving %s in the container" % path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return os.path.join(rootfs, *(done + [parts[-1]]))


def rootfs_gaps(changed, in_diff, rootfs):
    """Changed regular files and symlinks of the container that rootfs-diff.tar lacks."""
    gaps = []
    for path in sorted(set(changed) - set(in_diff) - set(ENGINE_MANAGED)):
        full = in_root(rootfs, path)
        if os.path.islink(full) or os.path.isfile(full):
            gaps.append(path)
    return gaps


def add_rootfs_files(path, rootfs, paths):
    """Rewrite the archive with PATHS (read from the stopped container's ROOTFS) in rootfs-diff.tar."""
    compression = compression_of(path)
    tmp = path + ".rootfs.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    out, close = _open_writer(tmp, compression)
    done = False
    ok = False
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:
            with TarStream(path) as src:
                for m in src:
                    data = src.extractfile(m) if m.isfile() else None
                    if m.name.lstrip("./") == "rootfs-diff.tar":
                        _write_rootfs_diff(dst, m, data, rootfs, paths)
                        done = True
                    else:
                        dst.addfile(m, data)
            if not done:
                info = tarfile.TarInfo("rootfs-diff.tar")
                info.mode = 0o644
                _write_rootfs_diff(dst, info, None, rootfs, paths)
        ok = True
    finally:
        try:
            close()
        finally:
            if not ok and os.path.exists(tmp):
                os.unlink(tmp)
    os.rename(tmp, path)


def _write_rootfs_diff(dst, member, data, rootfs, paths):
    import tempfile
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as diff:
            if data is not None:
                with tarfile.open(fileobj=data, mode="r|") as old:
                    for m in old:
                        diff.addfile(m, old.extractfile(m) if m.isfile() else None)
            for p in paths:
                diff.add(in_root(rootfs, p), arcname=p.lstrip("/"), recursive=False)
        member.size = buf.tell()
        buf.seek(0)
        dst.addfile(member, buf)
