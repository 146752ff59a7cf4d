# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoint archives: read them without restoring, and tell what would block a restore.

A Podman checkpoint archive is a tar (plain, gzip or zstd) holding config.dump
(the container's config), spec.dump (its OCI spec), network.status, the CRIU
images under checkpoint/, and the rootfs and volume diffs.  It does not say
which CRIU, kernel or host made it, so container_checkpoint writes a manifest
beside it (ARCHIVE + MANIFEST_SUFFIX) with those facts and the archive's sha256.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import ipaddress
import json
import os
import subprocess
import tarfile

from ansible_collections.stacklift.migrate.plugins.module_utils.engines.base import NotFound, parse_version
from ansible_collections.stacklift.migrate.plugins.module_utils.hostchecks import host_criu_problem

MANIFEST_SUFFIX = ".stacklift.json"
MANIFEST_HOST_FACTS = ("engine", "engine_version", "criu_version", "kernel", "cgroup_version", "runtime_version",
                       "host", "created")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_JSON_MEMBERS = ("config.dump", "spec.dump", "network.status", "container.json")
# Caps of the archive reader: a small compressed archive must not make it allocate gigabytes.
MAX_JSON_MEMBER = 16 << 20
MAX_MEMBERS = 1000000


class ArchiveError(Exception):
    pass


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def compression_of(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "none"


class _TarStream(object):
    """Open an archive as a streaming tarfile, whatever its compression."""

    def __init__(self, path):
        self.path = path
        self.proc = None
        self.raw = None

    def __enter__(self):
        kind = compression_of(self.path)
        if kind == "zstd":
            try:
                import zstandard  # optional; the zstd binary serves otherwise
                self.raw = zstandard.ZstdDecompressor().stream_reader(open(self.path, "rb"))
            except ImportError:
                try:
                    # fed on its stdin: zstd skips a path that is a symlink, as /proc/PID/fd/N of a
                    # decrypted archive is (encryption.plaintext)
                    with open(self.path, "rb") as src:
                        self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=src, stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE)
                except OSError:
                    raise ArchiveError("%s is zstd-compressed, but neither the zstandard Python module "
                                       "nor the zstd binary is on this host" % self.path)
                self.raw = self.proc.stdout
            self.tar = tarfile.open(fileobj=self.raw, mode="r|")
        else:
            self.tar = tarfile.open(self.path, mode="r|gz" if kind == "gzip" else "r|")
        return self.tar

    def __exit__(self, *exc):
        self.tar.close()
        if self.raw is not None:
            self.raw.close()
        if self.proc is not None:
            self.proc.wait()
        return False


def open_writer(path, compression):
    """(file object to write a tar to, closer) for an archive of COMPRESSION (zstd, gzip, none)."""
    # 0600 from its first byte (it holds the container's memory), and never an existing file
    raw = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    if compression == "gzip":
        import gzip
        gz = gzip.GzipFile(fileobj=raw, mode="wb")
        return gz, lambda: (gz.close(), raw.close())
    if compression == "zstd":
        proc = subprocess.Popen(["zstd", "-q", "-c", "-"], stdin=subprocess.PIPE, stdout=raw)

        def close():
            proc.stdin.close()
            if proc.wait() != 0:
                raise ArchiveError("zstd failed while writing the archive")
            raw.close()
        return proc.stdin, close
    return raw, raw.close


def read_manifest(path):
    mpath = path + MANIFEST_SUFFIX
    if not os.path.exists(mpath):
        return {}
    with open(mpath) as f:
        return json.load(f)


def write_manifest(path, data):
    mpath = path + MANIFEST_SUFFIX
    tmp = mpath + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, mpath)
    return mpath


def read_archive(path, original=None):
    """Everything stacklift needs to know about an archive, read without restoring it.

    ORIGINAL: the archive PATH is the plaintext of (encryption.plaintext), whose manifest and name count.
    """
    if not os.path.isfile(path):
        raise ArchiveError("no checkpoint archive at %s" % path)
    docs = {}
    sizes = {"memory_pages": 0, "rootfs_diff": 0, "volumes": 0, "criu_images": 0, "uncompressed": 0}
    tcp_streams = 0
    volume_archives = []
    members = 0
    try:
        with _TarStream(path) as tar:
            for m in tar:
                members += 1
                if members > MAX_MEMBERS:
                    raise ArchiveError("%s has more than %d members; not a checkpoint archive" % (path, MAX_MEMBERS))
                name = m.name.lstrip("./")
                sizes["uncompressed"] += m.size
                if name in _JSON_MEMBERS:
                    docs[name] = json_member(tar, m, path)
                elif name.startswith("checkpoint/"):
                    base = name[len("checkpoint/"):]
                    sizes["criu_images"] += m.size
                    if base.startswith("pages-"):
                        sizes["memory_pages"] += m.size
                    if base.startswith("tcp-stream-"):
                        tcp_streams += 1
                elif name == "rootfs-diff.tar":
                    sizes["rootfs_diff"] = m.size
                elif name.startswith("volumes/") and name.endswith(".tar"):
                    sizes["volumes"] += m.size
                    volume_archives.append(name[len("volumes/"):-len(".tar")])
    except (tarfile.TarError, EOFError, ValueError) as e:
        raise ArchiveError("%s is not a readable checkpoint archive: %s" % (path, e))
    manifest = read_manifest(original or path)
    if "container.json" in docs:
        return describe_docker(docs["container.json"], sizes, tcp_streams, volume_archives, original or path,
                               manifest)
    if "config.dump" not in docs:
        raise ArchiveError("%s is not a checkpoint archive of Podman or of stacklift's Docker engine (no "
                           "config.dump or container.json among its %d members)" % (path, members))
    return describe(docs, sizes, tcp_streams, volume_archives, original or path, manifest)


STANDARD_MOUNTS = ("/proc", "/dev", "/sys", "/dev/pts", "/dev/mqueue", "/sys/fs/cgroup", "/dev/shm",
                   "/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/run/.containerenv")


def _common_facts(path, sizes, tcp_streams, manifest):
    return {
        "path": path,
        "archive_bytes": os.path.getsize(path),
        "compression": compression_of(path),
        "tcp_connections_saved": tcp_streams,
        "sizes": sizes,
        "created_by": dict((k, manifest.get(k)) for k in MANIFEST_HOST_FACTS),
        "manifest_sha256": manifest.get("sha256"),
        "tcp_established": manifest.get("tcp_established"),
    }


def describe_docker(c, sizes, tcp_streams, volume_archives, path, manifest):
    """The facts of a stacklift Docker archive, whose container.json is the container's inspect data."""
    facts = _common_facts(path, sizes, tcp_streams, manifest)
    networks = {}
    for net, ep in sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        static = (ep.get("IPAMConfig") or {}).get("IPv4Address")
        ips = ["%s/%s" % (ep["IPAddress"], ep.get("IPPrefixLen") or 32)] if ep.get("IPAddress") else []
        networks[net] = {"static_ips": [static] if static else [], "ips": ips, "mac": ep.get("MacAddress")}
    host = c.get("HostConfig") or {}
    image_id = c.get("Image")
    facts.update({
        "engine": "docker",
        "container_name": (c.get("Name") or "").lstrip("/"),
        "container_id": c.get("Id"),
        "image_name": (c.get("Config") or {}).get("Image"),
        "image_id": "sha256:" + image_id if image_id and not image_id.startswith("sha256:") else image_id,
        "runtime": host.get("Runtime"),
        "cgroup_manager": None,
        "networks": networks,
        "network_mode": host.get("NetworkMode"),
        "mounts": [{"destination": m.get("Destination"), "type": m.get("Type"), "source": m.get("Source")}
                   for m in c.get("Mounts") or [] if m.get("Destination") not in STANDARD_MOUNTS],
        "volumes": sorted(set([m["Name"] for m in c.get("Mounts") or [] if m.get("Type") == "volume"
                               and m.get("Name")] + volume_archives)),
    })
    return facts


def describe(docs, sizes, tcp_streams, volume_archives, path, manifest):
    """Turn a Podman archive's documents into the facts checkpoint_info returns."""
    config = docs["config.dump"]
    spec = docs.get("spec.dump") or config.get("spec") or {}
    status = docs.get("network.status") or {}
    networks = {}
    for net, opts in sorted((config.get("newNetworks") or {}).items()):
        networks[net] = {"static_ips": opts.get("static_ips") or [], "ips": [], "mac": opts.get("static_mac")}
    for net, st in sorted(status.items()):
        entry = networks.setdefault(net, {"static_ips": [], "ips": [], "mac": None})
        for iface in (st.get("interfaces") or {}).values():
            entry["ips"] += [s["ipnet"] for s in iface.get("subnets") or []]
            entry["mac"] = entry["mac"] or iface.get("mac_address")
    mounts = [{"destination": m["destination"], "type": m.get("type"), "source": m.get("source")}
              for m in spec.get("mounts") or [] if m.get("destination") not in STANDARD_MOUNTS]
    image_id = config.get("rootfsImageID")
    facts = _common_facts(path, sizes, tcp_streams, manifest)
    facts.update({
        "engine": "podman",
        "container_name": config.get("name"),
        "container_id": config.get("id"),
        "image_name": config.get("rootfsImageName") or config.get("RawImageName"),
        "image_id": "sha256:" + image_id if image_id and not image_id.startswith("sha256:") else image_id,
        "runtime": config.get("runtime"),
        "cgroup_manager": config.get("cgroupManager"),
        "networks": networks,
        "network_mode": config.get("networkMode"),
        "mounts": mounts,
        "volumes": sorted(set([v["volumeName"] for v in config.get("namedVolumes") or []] + volume_archives)),
    })
    return facts


def host_facts(engine, info):
    """What restore_blockers needs to know about the host it runs on."""
    facts = {"engine": engine.info(), "image_present": True, "image_tags": [], "networks": {},
             "containers": engine.containers(), "volumes": engine.volumes()}
    try:
        img = engine.image(info["image_id"] or info["image_name"])
        facts["image_tags"] = img.get("RepoTags") or img.get("Names") or []
    except NotFound:
        facts["image_present"] = False
    for net in info["networks"]:
        try:
            facts["networks"][net] = engine.network(net)
        except NotFound:
            facts["networks"][net] = None
    return facts


def restore_blockers(info, facts, name=None, ignore_static_ip=False, ignore_volumes=False):
    """(blockers, warnings): why restoring this archive on that host would fail, before trying."""
    blockers, warnings = [], []
    eng = facts["engine"]
    made = info.get("created_by") or {}
    problem = host_criu_problem(eng)
    if problem:
        blockers.append("host CRIU: %s" % problem)
    if info.get("engine") and eng.get("engine") and info["engine"] != eng["engine"]:
        blockers.append("the archive was made by %s, this host's engine is %s: restore it with engine=%s"
                        % (info["engine"], eng["engine"], info["engine"]))
    if info.get("runtime") and eng.get("runtime") and info["runtime"] != eng["runtime"]:
        blockers.append("the archive was made with the %s runtime, this host's engine uses %s"
                        % (info["runtime"], eng["runtime"]))
    if made.get("criu_version") and eng.get("criu_version") and \
            parse_version(eng["criu_version"]) < parse_version(made["criu_version"]):
        warnings.append("this host's CRIU %s is older than the %s that made the archive"
                        % (eng["criu_version"], made["criu_version"]))
    if made.get("cgroup_version") and eng.get("cgroup_version") and made["cgroup_version"] != eng["cgroup_version"]:
        warnings.append("the archive comes from a cgroup %s host, this one is cgroup %s"
                        % (made["cgroup_version"], eng["cgroup_version"]))
    if not facts["image_present"]:
        blockers.append("image %s (%s) is not on this host; sync it first (stacklift.migrate.image_sync)"
                        % (info["image_name"], info["image_id"]))
    for net, want in sorted(info["networks"].items()):
        have = facts["networks"].get(net)
        if have is None:
            blockers.append("network %r is not on this host; create it with the same subnet first" % net)
            continue
        subnets = [ipaddress.ip_network(s, strict=False) for s in have["subnets"]]
        for ipnet in want["ips"]:
            ip = ipaddress.ip_interface(ipnet)
            if not ignore_static_ip and not any(ip.ip in s for s in subnets):
                blockers.append("network %r here has subnet %s, which does not hold the container's address %s"
                                % (net, ", ".join(have["subnets"]) or "none", ip.ip))
            elif not ignore_static_ip:
                for c in have["containers"].values():
                    if str(ip.ip) in c["ips"]:
                        blockers.append("address %s on network %r is taken by container %s"
                                        % (ip.ip, net, c["name"]))
    wanted = name or info["container_name"]
    for c in facts["containers"]:
        if c["name"] == wanted:
            blockers.append("the name %r is taken by container %s (%s)" % (wanted, c["id"][:12], c["state"]))
        elif c["id"] == info["container_id"] and not name:
            blockers.append("container %s (%s) holds this archive's container ID %s; restore under another "
                            "name or remove it first" % (c["name"], c["state"], c["id"][:12]))
    if not ignore_volumes:
        for vol in info["volumes"]:
            if vol in facts.get("volumes", ()):
                blockers.append("volume %r already exists here; remove it, or restore with ignore_volumes "
                                "to keep its content" % vol)
    return blockers, warnings


def json_member(tar, member, path):
    """A JSON member of an archive, within MAX_JSON_MEMBER bytes; ArchiveError otherwise."""
    if not member.isfile() or member.size > MAX_JSON_MEMBER:
        raise ArchiveError("%s: %s is %s, not a JSON document of at most %d bytes"
                           % (path, member.name, "%d bytes" % member.size if member.isfile() else "not a file",
                              MAX_JSON_MEMBER))
    try:
        return json.loads(tar.extractfile(member).read(MAX_JSON_MEMBER).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ArchiveError("%s: %s is not valid JSON: %s" % (path, member.name, e))
