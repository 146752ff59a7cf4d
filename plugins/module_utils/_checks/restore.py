# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What would block restoring an archive on a host, found before anything is tried: the host's
CRIU, engine and runtime, the image, the networks and their addresses, the container's name and ID,
its volumes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["host_facts", "restore_blockers"]

import ipaddress

from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import host_criu_problem
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import NotFound, parse_version


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
