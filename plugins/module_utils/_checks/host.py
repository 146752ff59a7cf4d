# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host checks, in one place: CRIU against the kernel, capabilities, container names.

What host_preflight, the checkpoint and the stack description ask of a host before anything is
frozen; each returns why not (a sentence for the user), or None."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "CRIU_MIN", "CRIU_KERNEL_RULES", "CAP_SYS_RESOURCE", "CONTAINER_NAME", "container_name_problem",
    "criu_kernel_problem", "host_criu_problem", "cap_bounding_set", "uid_problem", "RUNC_CRIU_CONFIG",
    "docker_daemon_problems", "criu_options", "docker_container_problems", "DOCKER_RESTARTING",
    "manager_problems", "free_bytes", "tree_bytes", "memory_bytes", "process_start", "memory_available",
    "container_memory_bytes", "container_pids", "shared_writable_files", "memory_sample", "SCRATCH_MOUNT", "memory_scratch",
]

import os
import re

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import parse_version

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


def _v(t):
    return ".".join(str(x) for x in t)


def cap_bounding_set(status_path="/proc/self/status"):
    """The capability bounding set of this process, as an int (None if unreadable)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        return None
    return None


def uid_problem(users, capbnd):
    """CRIU reads every task's rlimits; for a task of another uid that needs CAP_SYS_RESOURCE. USERS: the
    container's processes' users as ``podman top`` lists them ("?" for one gone while it looked: not a user)."""
    if capbnd is None or capbnd & (1 << CAP_SYS_RESOURCE):
        return None
    others = sorted(set(u for u in users if u not in ("root", "0", "?", "")))
    if not others:
        return None
    return ("processes run as %s, but this host lacks CAP_SYS_RESOURCE in its capability bounding set, "
            "so CRIU cannot read their rlimits (`Can't get rlimit: Operation not permitted`); run the "
            "container's processes as uid 0 or give the host CAP_SYS_RESOURCE" % ", ".join(others))


# Docker passes CRIU no options of its own; runc reads them from the file the container's
# org.criu.config annotation names, else from this one.
RUNC_CRIU_CONFIG = "/etc/criu/runc.conf"


def docker_daemon_problems(info):
    """Why this Docker daemon cannot checkpoint containers for stacklift (Engine.info() of docker)."""
    problems = []
    if not info.get("experimental"):
        problems.append("the Docker daemon is not in experimental mode, which checkpoints need: add "
                        "\"experimental\": true to /etc/docker/daemon.json and restart dockerd")
    if info.get("storage_driver") and info["storage_driver"] != "overlay2":
        problems.append("the Docker daemon stores containers with %s; stacklift moves a Docker container's "
                        "changed files from overlay2 only" % info["storage_driver"])
    return problems


def criu_options(path, read=None):
    """The options of a CRIU configuration file (one per line, '#' comments), or None if unreadable."""
    try:
        text = read(path) if read else open(path).read()
    except OSError:
        return None
    return set(line.split("#", 1)[0].strip().lstrip("-") for line in text.splitlines()) - {""}


def docker_container_problems(name, container, tcp=None, file_locks=False, read=None):
    """Why Docker container NAME (its inspect data) cannot be checkpointed and restored as asked (TCP: its
    mode, engines.base.TCP_MODES)."""
    problems = []
    host = container.get("HostConfig") or {}
    if tcp == "close":
        problems.append("container %r is to be restored with its TCP connections closed (tcp: close), which the "
                        "Docker engine cannot ask of CRIU per restore; use tcp: established" % name)
    if host.get("AutoRemove"):
        problems.append("container %r was started with --rm: Docker removes it, with its checkpoint, the moment "
                        "it is checkpointed" % name)
    needed = [o for o, want in (("tcp-established", tcp == "established"), ("file-locks", file_locks)) if want]
    if needed:
        path = (host.get("Annotations") or {}).get("org.criu.config") or RUNC_CRIU_CONFIG
        have = criu_options(path, read) or set()
        missing = [o for o in needed if o not in have]
        if missing:
            problems.append("container %r needs CRIU's %s, and Docker has no option for it: add the line%s to %s "
                            "(read by runc for every container), or start the container with "
                            "--annotation org.criu.config=FILE naming a file with %s"
                            % (name, " and ".join(missing), "s" if len(missing) > 1 else "", path,
                               "them" if len(missing) > 1 else "it"))
    return problems


# Restart policies under which Docker starts a checkpointed container afresh the moment its checkpoint
# stops it (seen on the lab, Docker 26.1.5: always, unless-stopped and on-failure, exit 137). Podman 5.4
# left all four stopped.
DOCKER_RESTARTING = ("always", "unless-stopped", "on-failure")


def manager_problems(engine, name, container):
    """Why something other than stacklift would start container NAME (its inspect data) afresh on the
    source once its checkpoint stops it, which would make two live copies; each with what to do instead."""
    problems = []
    policy = ((container.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if engine == "docker" and policy in DOCKER_RESTARTING:
        problems.append("container %r has restart policy %s: Docker starts it afresh the moment its checkpoint "
                        "stops it, a second copy without its state; run `docker update --restart=no %s` before "
                        "the migration (and set the policy again on the target after it)" % (name, policy, name))
    unit = ((container.get("Config") or {}).get("Labels") or {}).get("PODMAN_SYSTEMD_UNIT")
    if unit:
        problems.append("container %r is run by the systemd unit %s (Quadlet, or podman generate systemd): the unit "
                        "may start it afresh once its checkpoint stops it, and would on the next boot; stop the unit "
                        "from restarting it (systemctl edit %s: Restart=no), migrate, then move the unit to the "
                        "target" % (name, unit, unit))
    pod = container.get("Pod")
    if engine == "podman" and pod:
        problems.append("container %r is in pod %s: stacklift moves containers, not pods (the restore would "
                        "need the pod on the target); run its services as containers of their own"
                        % (name, container.get("PodName") or pod[:12]))
    return problems


# What a host has room for, and what a container takes: the preflight's and the fleet's measures.

def free_bytes(path):
    while not os.path.exists(path):
        path = os.path.dirname(path) or "/"
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def tree_bytes(path):
    """Bytes of the files below PATH (a volume's data), symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path or "/nonexistent"):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def memory_bytes(pid, proc="/proc"):
    """Resident memory of process PID, in bytes (0 when it cannot be read)."""
    try:
        with open(os.path.join(proc, str(pid), "status")) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# Where a split checkpoint is written when memory allows: a tmpfs every Linux host has.
SCRATCH_MOUNT = "/dev/shm"


def memory_scratch(need, mount=SCRATCH_MOUNT, proc="/proc"):
    """A directory in memory (under MOUNT, a tmpfs) with room for NEED bytes more, and the memory for them
    (MemAvailable), with a quarter to spare; "" when there is none."""
    try:
        with open(os.path.join(proc, "mounts")) as f:
            tmpfs = any(line.split()[1:3] == [mount, "tmpfs"] for line in f)
        room = min(free_bytes(mount), memory_available(os.path.join(proc, "meminfo")))
    except OSError:
        return ""
    return os.path.join(mount, "stacklift-pages") if tmpfs and room >= need * 1.25 else ""


def process_start(pid, proc="/proc"):
    """When process PID started (clock ticks since boot: the same PID and start is the same process),
    or None when there is no such process."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as f:
            # the command name, in parentheses, may hold spaces: the fields after its last ")"
            return int(f.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def memory_available(meminfo="/proc/meminfo"):
    """MemAvailable of this host, in bytes (0 when unreadable)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def container_pids(pid, proc="/proc"):
    """The PIDs (as strings) of every process in the PID namespace of PID: a container's processes."""
    try:
        ns = os.readlink(os.path.join(proc, str(pid), "ns", "pid"))
    except OSError:
        return []
    pids = []
    for entry in os.listdir(proc):
        try:
            if entry.isdigit() and os.readlink(os.path.join(proc, entry, "ns", "pid")) == ns:
                pids.append(entry)
        except OSError:
            continue
    return pids


def container_memory_bytes(pid, proc="/proc"):
    """Resident memory of every process in the PID namespace of PID (a container's processes), in bytes."""
    return sum(memory_bytes(p, proc) for p in container_pids(pid, proc))


def shared_writable_files(pid, proc="/proc"):
    """The files (paths inside the container, without the leading /) that a process of PID's container maps
    shared and writable: their content may change without their status changing (tree.changes reads them)."""
    paths = set()
    for p in container_pids(pid, proc):
        try:
            with open(os.path.join(proc, p, "maps")) as f:
                for line in f:
                    fields = line.split(None, 5)
                    if len(fields) == 6 and fields[1].startswith("rw") and fields[1].endswith("s") and \
                            fields[5].startswith("/"):
                        paths.add(fields[5].strip().lstrip("/"))
        except (IOError, OSError):
            continue
    return paths


def memory_sample(pid, limit=32 << 20, chunk=1 << 20, proc="/proc"):
    """Up to LIMIT bytes of PID's private writable memory (what its checkpoint's pages hold), read in CHUNKs spread
    over its mappings: a sample to time the compressor on. Empty when the process cannot be read."""
    try:
        with open(os.path.join(proc, str(pid), "maps")) as f:
            regions = []
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[1].startswith("rw") and fields[1].endswith("p") and \
                        (len(fields) < 6 or fields[5] in ("[heap]",)):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    regions.append((start, end))
    except (IOError, OSError):
        return b""
    total = sum(end - start for start, end in regions)
    if not total:
        return b""
    step = max(chunk, total // max(1, limit // chunk))
    out, got = [], 0
    try:
        with open(os.path.join(proc, str(pid), "mem"), "rb", 0) as mem:
            for start, end in regions:
                for at in range(start, end, step):
                    if got >= limit:
                        return b"".join(out)[:limit]
                    try:
                        mem.seek(at)
                        out.append(mem.read(min(chunk, end - at, limit - got)))
                    except (IOError, OSError, OverflowError, ValueError):
                        break
                    got += len(out[-1])
    except (IOError, OSError):
        pass
    return b"".join(out)[:limit]
