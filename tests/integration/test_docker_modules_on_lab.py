"""The per-host modules with engine=docker, for real on the lab's Docker engines: a Redis with keys, TTLs,
changed and deleted files, a named volume and a client's open connection, moved from node1 to node2."""

import json
import subprocess
import sys
import time

import pytest

from labhosts import run_module

NET, SUBNET, IP = "dmodnet", "10.89.13.0/24", "10.89.13.5"
REDIS = "localhost/stacklift/redis:latest"
ARCHIVE_DIR = "/var/lib/stacklift/dmodtest"
ARCHIVE = ARCHIVE_DIR + "/dmod.tar.zst"
CRIU_CONF = "--annotation org.criu.config=/etc/criu/stacklift-docker.conf"
CLIENT_NETNS = "stacklift-client"

# A client that keeps one connection to Redis and counts on it: INCR, back to back, until told to stop.
CLIENT = r"""
import json, os, socket, sys, time
ip, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection((ip, 6379), timeout=60)
f = s.makefile("rb")
values, errors, slowest = [], [], 0.0
while not os.path.exists(stop):
    t = time.time()
    try:
        s.sendall(b"INCR client\r\n")
        line = f.readline()
        if not line.startswith(b":"):
            raise ValueError(line)
        values.append(int(line[1:]))
    except Exception as e:
        errors.append(repr(e))
        break
    slowest = max(slowest, time.time() - t)
    time.sleep(0.05)
json.dump({"values": values, "errors": errors, "slowest": slowest}, open(out, "w"))
"""


def docker(host, cmd, **kw):
    return host.out("docker " + cmd, **kw)


def redis(host, *args):
    return docker(host, "exec dmod redis-cli %s" % " ".join(args))


def clean(host):
    host.run("docker rm -f dmod dmodplain >/dev/null 2>&1; docker volume rm -f dmodvol >/dev/null 2>&1; "
             "docker network rm -f %s >/dev/null 2>&1; rm -rf %s /var/lib/stacklift/restored"
             % (NET, ARCHIVE_DIR), check=False)


def route_client_to(host):
    subprocess.run(["ip", "-n", CLIENT_NETNS, "route", "replace", SUBNET, "via", host.address], check=True)


@pytest.fixture(scope="module")
def stack(node1, node2, tmp_path_factory):
    for h in (node1, node2):
        clean(h)
        docker(h, "network create --subnet %s %s" % (SUBNET, NET))
    docker(node1, "run -d --name dmod --network %s --ip %s -v dmodvol:/data %s %s" % (NET, IP, CRIU_CONF, REDIS))
    # another Redis, started without the CRIU options an open connection needs
    docker(node1, "run -d --name dmodplain --network %s %s" % (NET, REDIS))
    deadline = time.time() + 20
    while node1.run("docker exec dmod redis-cli ping", check=False).stdout.strip() != "PONG":
        assert time.time() < deadline
        time.sleep(0.2)
    redis(node1, "set", "session:alice", "cart-3-items", "EX", "600")
    redis(node1, "incrby", "visits", "42")
    node1.run("docker exec dmod sh -c 'echo changed > /etc/stacklift-added; rm /etc/issue; echo kept > /data/file'")
    run_id = [line for line in redis(node1, "info", "server").splitlines() if line.startswith("run_id:")][0]
    node2.run("docker rmi -f %s >/dev/null 2>&1" % REDIS, check=False)
    route_client_to(node1)
    tmp = tmp_path_factory.mktemp("dclient")
    client = {"stop": tmp / "stop", "out": tmp / "out.json"}
    client["proc"] = subprocess.Popen(["ip", "netns", "exec", CLIENT_NETNS, sys.executable, "-c", CLIENT, IP,
                                       str(client["stop"]), str(client["out"])])
    time.sleep(1)
    yield {"run_id": run_id, "client": client}
    if client["proc"].poll() is None:
        client["proc"].kill()
    for h in (node1, node2):
        clean(h)
    node1.run("docker save %s | ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
              "%s docker load -q >/dev/null" % (REDIS, node2.address), check=False)


def ssh_args(node1, node2):
    key = " ".join(node2.out("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
    node1.run("mkdir -p /var/lib/stacklift && echo '%s %s' > /var/lib/stacklift/known_hosts" % (node2.address, key))
    return {"target_host": node2.address, "key_file": "/root/.ssh/id_ed25519"}


def test_1_what_docker_cannot_do_is_refused_before_freezing(node1, stack):
    result, failed = run_module("node1", "container_checkpoint",
                                {"name": "dmodplain", "engine": "docker", "tcp_established": True,
                                 "archive_dir": ARCHIVE_DIR})
    assert failed and "needs CRIU's tcp-established" in result["msg"] and "org.criu.config" in result["msg"], result
    assert json.loads(docker(node1, "inspect dmodplain"))[0]["State"]["Running"]


def test_2_checkpoint_info_transfer_image_restore_with_an_open_connection(node1, node2, stack):
    args = {"name": "dmod", "archive_dir": ARCHIVE_DIR, "tcp_established": True, "engine": "docker"}
    result, failed = run_module("node1", "container_checkpoint", args, check=True, diff=True)
    assert not failed and result["changed"] and json.loads(docker(node1, "inspect dmod"))[0]["State"]["Running"]
    result, failed = run_module("node1", "container_checkpoint", args)
    assert not failed and result["changed"], result
    ck = result["checkpoints"][0]
    assert node1.out("sha256sum %s" % ARCHIVE).split()[0] == ck["sha256"]
    assert not json.loads(docker(node1, "inspect dmod"))[0]["State"]["Running"]
    result, failed = run_module("node1", "container_checkpoint", args)
    assert not failed and not result["changed"]

    result, failed = run_module("node1", "checkpoint_info", {"path": ARCHIVE})
    info = result["archive"]
    assert not failed and info["engine"] == "docker" and info["container_name"] == "dmod"
    assert info["networks"][NET]["ips"] == [IP + "/24"] and info["volumes"] == ["dmodvol"]
    assert info["tcp_connections_saved"] >= 1 and info["created_by"]["engine"] == "docker"

    ssh = ssh_args(node1, node2)
    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh, src=ARCHIVE))
    assert not failed and result["bytes"] > 0, result
    result, failed = run_module("node2", "checkpoint_info", {"path": ARCHIVE, "check_host": True, "engine": "docker"})
    assert not failed and any("not on this host" in b for b in result["blockers"]), result
    # an archive of Docker is not restored by Podman
    result, failed = run_module("node2", "checkpoint_info", {"path": ARCHIVE, "check_host": True, "engine": "podman"})
    assert any("made by docker" in b for b in result["blockers"]), result

    result, failed = run_module("node1", "image_sync", dict(ssh, archive=ARCHIVE, engine="docker"))
    assert not failed and result["action"] == "copied" and result["bytes"] > 10 ** 7, result
    assert json.loads(docker(node2, "image inspect %s" % REDIS))[0]["Id"] == info["image_id"]
    result, failed = run_module("node1", "image_sync", dict(ssh, archive=ARCHIVE, engine="docker"))
    assert not failed and result["action"] == "present" and not result["changed"]

    restore = {"archive": ARCHIVE, "tcp_established": True, "engine": "docker"}
    result, failed = run_module("node2", "container_restore", restore, check=True)
    assert not failed and result["changed"] and node2.run("docker inspect dmod", check=False).returncode != 0
    result, failed = run_module("node2", "container_restore", restore)
    assert not failed and result["changed"] and result["container"]["ips"] == {NET: [IP]}, result
    route_client_to(node2)

    # The same Redis process, its keys, its counter, a TTL that kept counting, its files and its volume.
    assert [line for line in redis(node2, "info", "server").splitlines() if line.startswith("run_id:")][0] == \
        stack["run_id"]
    assert redis(node2, "get", "visits") == "42" and redis(node2, "get", "session:alice") == "cart-3-items"
    assert 500 < int(redis(node2, "ttl", "session:alice")) <= 600
    assert docker(node2, "exec dmod cat /etc/stacklift-added /data/file").split() == ["changed", "kept"]
    assert node2.run("docker exec dmod test -e /etc/issue", check=False).returncode == 1
    assert json.loads(docker(node2, "inspect dmod"))[0]["Config"]["Image"] == REDIS

    # The client's connection lived through it: no error, and its counter went on from where it was.
    time.sleep(1)
    client = stack["client"]
    client["stop"].write_text("")
    client["proc"].wait(timeout=60)
    seen = json.loads(client["out"].read_text())
    assert seen["errors"] == [] and len(seen["values"]) > 20, seen["errors"]
    assert seen["values"] == list(range(1, len(seen["values"]) + 1))
    assert int(redis(node2, "get", "client")) == seen["values"][-1]

    result, failed = run_module("node2", "container_restore", restore)
    assert not failed and not result["changed"]
