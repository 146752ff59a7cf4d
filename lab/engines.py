"""The container engines of a lab host: Podman, and Docker beside it (same runc, same CRIU).

Every lab host runs both, so that one lab serves the tests of both engines. Docker's daemon is
configured as ../shared/notes/docker-checkpoint-on-these-machines.md found it works here:
experimental (checkpoints), overlay2 on a directory that is not overlayfs, cgroupfs under a
parent of the host's own, runc, and no iptables of its own (the lab routes container networks
without NAT, as Podman's hosts here do). Used by lab.py.
"""

import json
from pathlib import Path

ENGINES = ("podman", "docker")


def docker_daemon_json(name):
    return json.dumps({
        "experimental": True,
        "storage-driver": "overlay2",
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "cgroup-parent": "/" + docker_cgroup_parent(name),
        "default-runtime": "runc",
        "bip": "10.77.0.1/24",
        "default-address-pools": [{"base": "10.77.0.0/16", "size": 24}],
        "iptables": False,
        "ip6tables": False,
        "userland-proxy": False,
        "log-driver": "json-file",
    }, indent=1)


def docker_cgroup_parent(name):
    return "stacklift-docker-" + name


# Run by the host's init after its pivot_root, before sshd: containerd, then dockerd, in the background
# (catatonit, PID 1, reaps them). `lab up` waits for the daemon to answer.
INIT_DOCKER = r"""
sysctl -qw net.ipv4.ip_forward=1
mkdir -p /etc/docker /var/log
cat >/etc/docker/daemon.json <<'EOF'
DAEMON_JSON
EOF
containerd >/var/log/containerd.log 2>&1 &
for _ in $(seq 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
dockerd --containerd=/run/containerd/containerd.sock >/var/log/dockerd.log 2>&1 &
"""


def init_docker(name):
    return INIT_DOCKER.replace("DAEMON_JSON", docker_daemon_json(name))


# Each engine's storage must not sit on the host root's overlayfs: bind-mounted from the host's state.
STORAGE = {"podman": "/var/lib/containers", "docker": "/var/lib/docker", "containerd": "/var/lib/containerd"}


def wait_docker_command(timeout=60):
    return "for i in $(seq %d); do docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done; " \
           "tail -20 /var/log/dockerd.log >&2; exit 1" % (timeout * 5)


def load_command(engine, archive):
    """Shell for a host: load the lab's images into ENGINE unless it has them all."""
    return "%s load -q -i %s" % (engine, archive)


def image_ids_command(engine):
    return "%s images -q --no-trunc" % engine


def remove_all_commands():
    """What removes every container and network of both engines on a host (teardown)."""
    return [["podman", "rm", "-a", "-f", "-t", "0"], ["podman", "network", "prune", "-f"],
            ["sh", "-c", "ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids"],
            ["docker", "network", "prune", "-f"]]


def container_ids_commands():
    return [["podman", "ps", "-a", "-q", "--no-trunc"], ["docker", "ps", "-a", "-q", "--no-trunc"]]


def cgroup_parents(name):
    """Where each engine puts its containers' cgroups, under every controller."""
    return ("libpod_parent", "machine.slice", docker_cgroup_parent(name))


def cgroup_dirs(name, ids, base=Path("/sys/fs/cgroup")):
    dirs = []
    for ctrl in base.iterdir():
        for parent in cgroup_parents(name):
            for cid in ids:
                dirs.extend((ctrl / parent).glob("*%s*" % cid))
    return dirs


def leftover_parent_dirs(name, base=Path("/sys/fs/cgroup")):
    """Docker's per-host cgroup parent, under every controller (removed when the host goes down)."""
    return sorted(base.glob("*/" + docker_cgroup_parent(name)))
