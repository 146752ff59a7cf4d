# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a checkpoint archive holds, read without restoring it: the container's name, image,
networks, mounts and volumes, the sizes of its memory pages and diffs, and the manifest's facts of the
host that made it (checkpoint_info's facts)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["read_archive", "STANDARD_MOUNTS", "describe_docker", "describe"]

import os
import tarfile

from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    _JSON_MEMBERS, MANIFEST_HOST_FACTS, MAX_MEMBERS, ArchiveError, TarStream, compression_of, json_member,
    read_manifest)


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
        with TarStream(path) as tar:
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
        "created_by": {k: manifest.get(k) for k in MANIFEST_HOST_FACTS},
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
