"""The window's container fence on a lab host, through fences.Host over SSH: a client's established connection into
the fenced container gets ICMP host-unreachable at each retransmission, while CRIU dumps it too (its network lock
lets the errors through by their mark), and goes on afterwards; the namespace's ICMP limit comes back with the fence
lifted; and the host fence answers a routed client the same way, from its interfaces' ingress. Without the answers
the client's retransmission backoff doubles through the fence (0.2, 0.4, 0.8, 1.6 s...)."""

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".cache" / "collections"))  # ansible_collections.stacklift.migrate, as the units

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine  # noqa: E402
from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences  # noqa: E402

CLIENT_NETNS = "stacklift-client"
NET, SUBNET, IP = "fencenet", "10.89.40.0/24", "10.89.40.5"
REDIS = "localhost/stacklift/redis:latest"


def over_ssh(host):
    """A fences.Host runner (argv, data) -> (rc, out, err) on a lab host."""
    def run(argv, data=None):
        res = subprocess.run(host.ssh_cmd() + [shlex.join(argv)], input=data, capture_output=True, text=True,
                             timeout=120, check=False)
        return res.returncode, res.stdout, res.stderr
    return run


def icmp_unreachables():
    """ICMP destination-unreachable messages the lab's client namespace has received."""
    text = subprocess.run(["ip", "netns", "exec", CLIENT_NETNS, "cat", "/proc/net/snmp"], capture_output=True,
                          text=True, check=True).stdout
    names, values = [line.split()[1:] for line in text.splitlines() if line.startswith("Icmp:")][:2]
    return int(dict(zip(names, values))["InDestUnreachs"])


@pytest.fixture
def redis_with_client(node1, tmp_path):
    """A Redis on node1 with 1 GB of keys, the bench's client in the client namespace routed to it through node1,
    and a fences.Host of node1 over SSH; yields (host, pid); then the client's result is checked: no error."""
    node1.run("podman rm -f -t 0 fenced >/dev/null 2>&1; podman network rm -f %s >/dev/null 2>&1" % NET, check=False)
    node1.run("podman network create --subnet %s %s >/dev/null && podman run -d --name fenced --network %s --ip %s "
              "--entrypoint /usr/bin/redis-server %s --bind 0.0.0.0 --protected-mode no --save '' >/dev/null && "
              "until podman exec fenced redis-cli ping >/dev/null 2>&1; do sleep 0.1; done && "
              "podman exec fenced redis-cli debug populate 1000000 key 1000 >/dev/null" % (SUBNET, NET, NET, IP, REDIS))
    subprocess.run(["ip", "-n", CLIENT_NETNS, "route", "replace", SUBNET, "via", node1.address], check=True)
    out, stop = tmp_path / "client.json", tmp_path / "stop"
    client = subprocess.Popen(["ip", "netns", "exec", CLIENT_NETNS, sys.executable, str(REPO / "bench" / "redis_client.py"),
                               IP, "1", str(out), str(stop)])
    try:
        time.sleep(1)
        run = over_ssh(node1)
        yield fences.Host(PodmanEngine(run, binary="podman"), run), int(node1.out("podman inspect -f '{{.State.Pid}}' fenced"))
        time.sleep(1)
    finally:
        stop.write_text("")
        client.wait(timeout=60)
        subprocess.run(["ip", "-n", CLIENT_NETNS, "route", "del", SUBNET], check=False)
        node1.run("podman rm -f -t 0 fenced >/dev/null 2>&1; podman network rm -f %s >/dev/null 2>&1" % NET, check=False)
    result = json.loads(out.read_text())
    assert result["errors"] == [], result["errors"]  # the connection went on


def test_a_fenced_container_answers_its_clients_retransmissions_through_criu_s_dump(node1, redis_with_client):
    host, pid = redis_with_client
    before = icmp_unreachables()
    host.fence_container(pid, "fenced")
    was = host.unlimit_icmp(pid)
    start = time.time()
    # CRIU's own network lock stands while it dumps the connections (0.4 s here: 1 GB into the page cache)
    node1.run("podman container checkpoint --leave-running --tcp-established fenced >/dev/null")
    dumped_for, in_dump = time.time() - start, icmp_unreachables() - before
    time.sleep(2.0)
    fenced_for = time.time() - start
    host.unfence_container(pid, "fenced", icmp_ratelimit=was)
    answered = icmp_unreachables() - before
    limit_after, fenced_after = node1.out("nsenter -t %d -n cat %s" % (pid, fences.ICMP_RATELIMIT)), \
        host.container_fenced(pid)
    # one answer per retransmission, ~200 ms apart: dropped, or limited to 6 then 1 a second, it would be fewer
    assert in_dump >= int(dumped_for / 0.25), (in_dump, dumped_for)  # the lock drops errors without CRIU's mark
    assert answered >= int(fenced_for / 0.25), (answered, fenced_for)
    assert was == "1000" and limit_after == "1000" and not fenced_after  # the namespace as it was


def test_the_host_fence_answers_a_routed_client_at_every_retransmission_without_the_hosts_limit(node1, redis_with_client):
    """What a source does for a checkpointed container's address, and a target for a restored one before the commit:
    the host fence answers the client's retransmissions at its interface's ingress, one each ~200 ms for 3 s, where
    the host's own ICMP errors (before routing) stop at six, then one a second; the host's limit is not touched."""
    host, _pid = redis_with_client
    table = fences.host_fence_table("fence-test")
    assert "eth0" in host.uplinks()
    before = icmp_unreachables()
    host.raise_host_fence(table)
    try:
        host.fence_addresses(table, [IP])
        start = time.time()
        time.sleep(3.0)
        answered, fenced_for = icmp_unreachables() - before, time.time() - start
    finally:
        host.lift_host_fence(table)
    assert answered >= int(fenced_for / 0.25), (answered, fenced_for)
    assert node1.out("cat %s" % fences.ICMP_RATELIMIT) == "1000"
    assert table not in node1.out("nft list tables")
