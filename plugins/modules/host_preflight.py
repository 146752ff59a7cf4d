#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_preflight
short_description: Check that a host can take its part in a stack migration, before anything is touched
version_added: 0.1.0
description:
  - On a source host (O(role=source)) it checks that the containers run, that CRIU works and suits
    the kernel (C(criu check)), that CRIU can dump their processes (uid 0, or CAP_SYS_RESOURCE),
    and that the archive directory has room; it returns what the target must match (runtime,
    networks and addresses, images) and the CPU description CRIU compares.
  - On a target host (O(role=target)) it checks CRIU and the kernel, the runtime against the
    source's, the CPU against the source's (C(criu cpuinfo check)), the networks (missing ones
    are made later; one with another subnet is a problem), names and addresses already taken,
    and room for the archives.
  - It changes nothing and returns every problem it found in C(problems).
author:
  - stacklift developers (@stacklift)
options:
  role:
    description: Whether this host is the stack's source or its target.
    type: str
    required: true
    choices: [source, target]
  containers:
    description: The stack's containers (their names on the source).
    type: list
    elements: str
    required: true
  archive_dir:
    description: Where archives will be written (source) or received (target).
    type: path
    default: /var/lib/stacklift/checkpoints
  source:
    description: On a target, what the source's preflight returned in C(source_facts).
    type: dict
  networks:
    description: Networks the stack needs, each with C(name) and C(subnet).
    type: list
    elements: dict
    default: []
  target_addresses:
    description:
      - With V(source), the addresses of the stack's targets as this host reaches them; each is
        reached over SSH now (and its archive directory made), as the window will reach it.
      - C(user@address:port) gives the user and port too (the C(stacklift.migrate.ssh_endpoint) filter makes it); root and 22 otherwise.
      - Jump hosts come first, each ended by a comma; a user other than root is checked to have passwordless sudo.
    type: list
    elements: str
    default: []
  key_file:
    description: With O(target_addresses), the private key on this host for the targets.
    type: path
  private_key:
    description:
      - With O(target_addresses), the private key's text for the targets, instead of O(key_file) (as
        M(stacklift.migrate.window_source) takes it). Never logged.
    type: str
  host_key_checking:
    description: With O(target_addresses), how the targets' host keys are checked (as
      M(stacklift.migrate.window_source) checks them).
    type: str
    choices: [strict, accept_new, ignore]
    default: strict
  known_hosts_file:
    description: With O(target_addresses), the known hosts file that holds the targets' keys.
    type: path
    default: /var/lib/stacklift/known_hosts
  encrypted:
    description: The archives will be encrypted (C(encryption_key)); checks this host can do it.
    type: bool
    default: false
  measure_compression:
    description:
      - On a source with O(target_addresses), measure what compression suits the archives, in
        RV(source_facts)'s C(compression). It times each connection to a target (32 MB, incompressible), and zstd
        (level 3, one thread, as an engine compresses) on a 32 MB sample of the containers' memory. The choice
        is V(none) when the slowest link beats the compressor by more than what compression saves.
    type: bool
    default: false
  memory:
    description:
      - The memory modes the host's services ask for (a service's C(memory) in the stack description).
      - On a target, V(lazy) and V(precopy+lazy) are a problem where the host cannot restore lazily (not Podman
        with runc, no M(stacklift.migrate.lazy_runtime), or a CRIU without userfaultfd); V(auto) is not, and
        RV(lazy_restore) says which way it will go.
      - On a source, V(precopy+lazy) is a problem where the host cannot pre-dump (a kernel without
        C(CONFIG_MEM_SOFT_DIRTY), or not Podman with runc); V(auto) is not, and the C(pre_copy) of
        RV(source_facts) says whether it will.
    type: list
    elements: str
    choices: [eager, lazy, precopy+lazy, auto]
    default: []
extends_documentation_fragment:
  - stacklift.migrate.attributes.READ_ONLY
  - stacklift.migrate.engine
  - ansible.builtin.action_common_attributes
notes:
  - On both sides it also checks the tools the window runs (criu, nft, nsenter, zstd, sha256sum),
    and with O(target_addresses), that the source reaches its targets over SSH.
seealso:
  - module: stacklift.migrate.stack_plan
"""

EXAMPLES = r"""
- name: Source side
  stacklift.migrate.host_preflight:
    role: source
    containers: [shop-db, shop-cache, shop-app]
  register: src
  delegate_to: node1

- name: Target side
  stacklift.migrate.host_preflight:
    role: target
    containers: [shop-db, shop-cache, shop-app]
    source: "{{ src.source_facts }}"
  delegate_to: node2
"""

RETURN = r"""
problems:
  description: Every reason this host cannot take its part.
  returned: always
  type: list
  sample: ["criu 4.1 cannot dump TCP sockets on Linux 6.18: install CRIU 4.2 or newer"]
  elements: str
host:
  description: The engine, its runtime, CRIU, the kernel, the cgroup version and manager, the architecture.
  returned: always
  type: dict
  sample:
    engine: podman
    engine_version: 5.4.2
    runtime: runc
    runtime_version: 1.3.0
    cgroup_version: v2
    cgroup_manager: cgroupfs
    kernel: 6.18.0
    arch: amd64
    criu_version: 4.2.1
lazy_restore:
  description: On a target, whether its restores can be lazy (the reason when not is in RV(lazy_problem)).
  returned: role=target
  type: bool
  sample: true
lazy_problem:
  description: On a target, why it cannot restore lazily, or null.
  returned: role=target
  type: str
  sample: lazy restore needs Podman (Docker's restore repacks the images through containerd)
source_facts:
  description: On a source, what the target must match (pass it to the target's preflight).
  returned: role=source
  type: dict
  sample:
    runtime: runc
    criu_version: 4.2.1
    containers:
      shop-db:
        image_id: 8d2a41c0f3b9
        image_name: localhost/stacklift/postgres:latest
        ips:
          shopnet: 10.89.10.2
        volumes: []
    networks:
      shopnet:
      - 10.89.10.0/24
    images:
      localhost/stacklift/postgres:latest: 8d2a41c0f3b9
    archive_bytes_estimate: 353326592
    cpuinfo: null
    pre_copy: false
    compression: {link_mb_s: {10.231.0.12: 180.4}, compressor_mb_s: 96.2, ratio: 0.52, chosen: none}
"""

import base64
import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import SSH_SPEC
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import LAZY_MODES, MEMORY_MODES, lazy_problem
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.precopy import dirty_tracking_problem
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import choose_compression
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    NotFound, container_ips, container_volumes, parse_version)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import (
    ENGINE_SPEC, engine_for_module)
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import (
    cap_bounding_set, docker_daemon_problems, free_bytes, host_criu_problem, manager_problems, memory_bytes,
    memory_sample, tree_bytes, uid_problem)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

# Archives are about the size of a container's memory plus its rootfs changes; ask for that and a margin.
SPACE_MARGIN = 1.5


def space_problems(archive_dir, need, host):
    free = host["archive_dir_free"] = free_bytes(archive_dir)
    if free < need * SPACE_MARGIN:
        return ["%s has %d MB free; the archives need about %d MB"
                % (archive_dir, free // 10 ** 6, need * SPACE_MARGIN // 10 ** 6)]
    return []


def criu_cpuinfo(module, action, blob=None):
    """criu cpuinfo dump (returns the image, base64) or check (returns a problem or None)."""
    d = tempfile.mkdtemp(prefix="stacklift-cpuinfo-")
    try:
        if action == "dump":
            rc, out, err = module.run_command(["criu", "cpuinfo", "dump", "-D", d])
            if rc != 0:
                return None
            with open(os.path.join(d, "cpuinfo.img"), "rb") as f:
                return base64.b64encode(f.read()).decode()
        with open(os.path.join(d, "cpuinfo.img"), "wb") as f:
            f.write(base64.b64decode(blob))
        rc, out, err = module.run_command(["criu", "cpuinfo", "check", "-D", d])
        if rc != 0:
            return "this host's CPU lacks features the source's CPU has (criu cpuinfo check: %s)" % (
                (err or out).strip().splitlines()[-1:] or ["failed"])[0]
        return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_criu(module, host):
    problems = docker_daemon_problems(host) if host.get("engine") == "docker" else []
    problem = host_criu_problem(host)
    if problem:
        problems.append(problem)
    else:
        rc, out, err = module.run_command(["criu", "check"])
        if rc != 0:
            problems.append("criu check fails here: %s" % (err or out).strip()[-300:])
    return problems


# What the window runs on each side, besides the engine: fences (nsenter, nft), archives (zstd),
# the target's check of what arrived (sha256sum).
WINDOW_TOOLS = {"source": ["criu", "nft", "nsenter", "zstd"], "target": ["criu", "nft", "zstd", "sha256sum"]}


def tool_problems(module, role):
    if role == "target" and not module.get_bin_path("conntrack"):
        module.warn("conntrack is not on this host's PATH: a stack that ran here before may find its restored "
                    "connections dropped by the connection tracking it left (install conntrack)")
    missing = [t for t in WINDOW_TOOLS[role] if not module.get_bin_path(t)]
    problems = ["the migration needs %s on this host, which %s not on its PATH"
                % (", ".join(missing), "is" if len(missing) == 1 else "are")] if missing else []
    if module.params["encrypted"]:
        from ansible_collections.stacklift.migrate.plugins.module_utils._archive.encryption import HAS_CRYPTOGRAPHY
        if not HAS_CRYPTOGRAPHY:
            problems.append("encrypted archives need the Python library cryptography on this host "
                            "(python3-cryptography)")
    return problems


def reach_problems(module, links=None):
    """The source reaches each target over SSH, as the window will, before anything is frozen; with LINKS (a dict),
    the throughput of each connection goes into it too (MB/s by address)."""
    p = module.params
    if not p["target_addresses"]:
        return []
    from ansible_collections.stacklift.migrate.plugins.module_utils._transport import ssh as _ssh
    if not _ssh.HAS_PARAMIKO:
        return ["paramiko is not installed on this host; the window sends archives with it"]
    problems = []
    for address in p["target_addresses"]:
        params = dict(p, target_host=address, target_port=22, target_user="root", connect_timeout=10)  # address may say otherwise
        try:
            client = _ssh.connect(params)
        except _ssh.TransferError as e:
            problems.append(e.msg)
            continue
        try:
            # Made private (0700): archives hold the services' memory, secrets included.
            rc, _out, err = _ssh.remote_run(client, "test -w {d} || (umask 077 && mkdir -p {d})".format(
                d=_ssh.quote(p["archive_dir"])), timeout=30)
            if rc != 0:
                how = " (as root through sudo -n: the user needs passwordless sudo there)" if client.sudo else ""
                problems.append("%s: cannot write %s there%s: %s" % (address, p["archive_dir"], how, err.strip()))
            elif links is not None:
                links[address] = _ssh.link_throughput(client)
        finally:
            client.close()
    return problems


def compressor_speed(module, pids):
    """(MB/s, compressed/plain) of zstd -3 on one thread (as an engine's compressor runs) over a sample of the
    memory of PIDS; (None, None) without a sample."""
    sample = b"".join(memory_sample(pid, limit=(32 << 20) // max(1, len(pids))) for pid in pids)
    if len(sample) < (1 << 20):
        return None, None
    zstd = module.get_bin_path("zstd")
    if not zstd:
        return None, None
    start = time.time()
    # stdin and stdout at once (run_command writes all of its data first, and zstd's output would fill the pipe)
    res = subprocess.run([zstd, "-3", "-T1", "-c"], input=sample, capture_output=True, timeout=120, check=False)
    if res.returncode != 0:
        return None, None
    return round(len(sample) / 1e6 / max(time.time() - start, 1e-6), 1), round(len(res.stdout) / float(len(sample)), 3)


def compression_choice(module, links, pids):
    """What the archives' compression should be here, measured: the slowest link against the compressor."""
    speed, ratio = compressor_speed(module, pids)
    slowest = min(links.values()) if links else None
    return {"link_mb_s": links, "compressor_mb_s": speed, "ratio": ratio,
            "chosen": choose_compression(slowest, speed, ratio)}


def source_side(module, engine, host):
    p = module.params
    links = {} if p["measure_compression"] else None
    problems = check_criu(module, host) + tool_problems(module, "source") + reach_problems(module, links)
    capbnd = cap_bounding_set()
    facts = {"runtime": host.get("runtime"), "criu_version": host.get("criu_version"), "containers": {},
             "networks": {}, "images": {}}
    need = 0
    found = engine.containers_named(p["containers"])
    for name in p["containers"]:
        c = found[name]
        if c is None:
            problems.append("no container %r on this host" % name)
            continue
        state = c.get("State") or {}
        if not state.get("Running"):
            problems.append("container %r is %s, not running" % (name, state.get("Status")))
            continue
        problem = uid_problem(engine.container_users(name), capbnd)
        if problem:
            problems.append("container %r cannot be checkpointed: %s" % (name, problem))
        problems += manager_problems(host.get("engine"), name, c)  # never two live copies
        ips = container_ips(c)
        volumes = container_volumes(c)
        facts["containers"][name] = {"image_id": c.get("Image"), "image_name": c.get("ImageName"), "ips": ips,
                                     "volumes": sorted(volumes)}
        facts["images"][c.get("ImageName") or c.get("Image")] = c.get("Image")
        for net in ips:
            if net not in facts["networks"]:
                try:
                    facts["networks"][net] = engine.network(net)["subnets"]
                except NotFound:
                    facts["networks"][net] = []
        # the archive holds the memory, the changed files and the named volumes' contents
        need += memory_bytes(state.get("Pid") or 0) + 64 * 1024 * 1024 + sum(tree_bytes(v) for v in volumes.values())
    problems += space_problems(p["archive_dir"], need, host)
    facts["archive_bytes_estimate"] = need
    facts["cpuinfo"] = criu_cpuinfo(module, "dump")
    why, more = precopy_side(module, host)
    facts["pre_copy"], problems = why is None, problems + more
    if links is not None:
        pids = [(c.get("State") or {}).get("Pid") for c in found.values() if c and (c.get("State") or {}).get("Pid")]
        facts["compression"] = compression_choice(module, links, pids)
    return problems, facts


def target_side(module, engine, host):
    p = module.params
    src = p["source"] or {}
    problems = check_criu(module, host) + tool_problems(module, "target")
    if src.get("runtime") and host.get("runtime") != src["runtime"]:
        problems.append("the source runs containers with %s, this host with %s: CRIU images do not cross runtimes"
                        % (src["runtime"], host.get("runtime")))
    if src.get("criu_version") and host.get("criu_version") and \
            parse_version(host["criu_version"]) < parse_version(src["criu_version"]):
        module.warn("this host's CRIU %s is older than the source's %s" % (host["criu_version"], src["criu_version"]))
    if src.get("cpuinfo"):
        problem = criu_cpuinfo(module, "check", src["cpuinfo"])
        if problem:
            problems.append(problem)
    wanted = {n["name"]: [n["subnet"]] if n.get("subnet") else [] for n in p["networks"]}
    for net, subnets in (src.get("networks") or {}).items():
        wanted.setdefault(net, subnets)
    for net, subnets in sorted(wanted.items()):
        try:
            have = engine.network(net)
        except NotFound:
            continue  # the restore role makes it, with the source's subnet
        if subnets and sorted(have["subnets"]) != sorted(subnets):
            problems.append("network %r here has subnet %s, the stack needs %s"
                            % (net, ", ".join(have["subnets"]) or "none", ", ".join(subnets)))
        for cid, c in have["containers"].items():
            for name, info in (src.get("containers") or {}).items():
                ip = (info.get("ips") or {}).get(net)
                if ip and ip in c["ips"] and c["name"] != name:
                    problems.append("address %s on network %r is taken here by container %s" % (ip, net, c["name"]))
    here = {c["name"]: c for c in engine.containers()}
    for name in p["containers"]:
        if name in here:
            problems.append("a container named %r already exists here (%s)" % (name, here[name]["state"]))
    volumes = set(engine.volumes())
    for name, info in sorted((src.get("containers") or {}).items()):
        for volume in info.get("volumes") or []:
            if volume in volumes:
                problems.append("volume %r of container %r already exists here; the restore makes it from the "
                                "archive" % (volume, name))
    # an encrypted archive is decrypted beside itself for the restore: room for both
    need = (src.get("archive_bytes_estimate") or 0) * (2 if p["encrypted"] else 1)
    problems += space_problems(p["archive_dir"], need, host)
    return problems


def lazy_side(module, host):
    """Why this target cannot restore lazily (None when it can), and the problems that makes."""
    why = lazy_problem(host.get("engine"), host.get("runtime"))
    if why is None:
        rc, out, err = module.run_command(["criu", "check", "--feature", "uffd-noncoop"])
        if rc != 0:
            why = "CRIU cannot use userfaultfd here: %s" % ((err or out).strip()[-200:] or "criu check failed")
    wanted = module.params["memory"]
    return why, ["memory %s: %s" % (w, why) for w in sorted(set(wanted) & set(LAZY_MODES))] if why else []


def precopy_side(module, host):
    """Why this source cannot pre-copy (None when it can), and the problems that makes for precopy+lazy."""
    why = None  # the runtime wrapper it also needs is installed by the preflight role, after this check
    if host.get("engine") != "podman" or (host.get("runtime") or "runc") != "runc":
        why = "pre-copy needs Podman with runc (it pre-dumps through runc; Docker has no pre-dump)"
    why = why or dirty_tracking_problem(module.run_command)
    return why, (["memory precopy+lazy: %s; lazy moves the pages after the restore without it" % why]
                 if why and "precopy+lazy" in module.params["memory"] else [])


def main():
    spec = ArgumentSpec(dict(
        role=dict(type="str", required=True, choices=["source", "target"]),
        containers=dict(type="list", elements="str", required=True),
        archive_dir=dict(type="path", default="/var/lib/stacklift/checkpoints"),
        source=dict(type="dict"),
        networks=dict(type="list", elements="dict", default=[]),
        target_addresses=dict(type="list", elements="str", default=[]),
        encrypted=dict(type="bool", default=False),
        measure_compression=dict(type="bool", default=False),
        memory=dict(type="list", elements="str", default=[], choices=list(MEMORY_MODES)),
    )).merge(SSH_SPEC.without("target_host", "target_port", "target_user", "connect_timeout"), ENGINE_SPEC)
    module = spec.create_module(supports_check_mode=True)
    engine = engine_for_module(module)
    try:
        host = engine.info()
        if module.params["role"] == "source":
            problems, facts = source_side(module, engine, host)
            module.exit_json(changed=False, problems=problems, host=host, source_facts=facts)
        problems = target_side(module, engine, host)
        why, more = lazy_side(module, host)
    except StackliftError as e:
        module.fail_json(**e.fail_kwargs())
    module.exit_json(changed=False, problems=problems + more, host=host, lazy_restore=why is None, lazy_problem=why)


if __name__ == "__main__":
    main()
