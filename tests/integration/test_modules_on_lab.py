"""Each per-host module for real on the lab: checkpoint on node1, image and archive to node2, restore, probe."""

import json
import time

import pytest

from labhosts import run_module

NET, SUBNET, IP = "modnet", "10.89.3.0/24", "10.89.3.5"
REDIS = "localhost/stacklift/redis:latest"
ARCHIVE_DIR = "/var/lib/stacklift/modtest"
ARCHIVE = ARCHIVE_DIR + "/modcache.tar.zst"


def redis(host, container, *args):
    return host.out("podman exec %s redis-cli %s" % (container, " ".join(args)))


def wait_pong(host, container):
    deadline = time.time() + 20
    while host.run("podman exec %s redis-cli ping" % container, check=False).stdout.strip() != "PONG":
        assert time.time() < deadline, host.out("podman logs %s" % container)
        time.sleep(0.2)


def clean(host):
    host.run("podman rm -f -t 0 modcache modcache2 squatter stopped >/dev/null 2>&1; "
             "podman volume prune -f >/dev/null; podman network rm -f %s >/dev/null 2>&1; rm -rf %s "
             "/var/lib/stacklift/restored" % (NET, ARCHIVE_DIR), check=False)


@pytest.fixture(scope="module")
def stack(node1, node2):
    """A Redis with state on node1; node2 has the network but not the image."""
    for h in (node1, node2):
        clean(h)
        h.run("podman network create --subnet %s %s >/dev/null" % (SUBNET, NET))
    node1.run("podman run -d --name modcache --network %s --ip %s %s >/dev/null" % (NET, IP, REDIS))
    wait_pong(node1, "modcache")
    redis(node1, "modcache", "set", "session:alice", "cart-3-items", "EX", "600")
    redis(node1, "modcache", "incrby", "visits", "41")
    redis(node1, "modcache", "incr", "visits")
    run_id = node1.out("podman exec modcache redis-cli info server | sed -n 's/^run_id://p'")
    node2.run("podman rmi -f %s >/dev/null 2>&1" % REDIS, check=False)
    yield {"run_id": run_id}
    for h in (node1, node2):
        clean(h)
    # Leave node2 as the lab made it: with every demo image.
    node1.run("podman image exists %s && podman save --format docker-archive %s | ssh -o StrictHostKeyChecking=no "
              "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR %s podman load -q >/dev/null"
              % (REDIS, REDIS, node2.address), check=False)


def ssh_args(node1, node2):
    """SSH from node1 to node2, with node2's host key in node1's stacklift known hosts (read from node2
    over the test's own connection, as the preflight does)."""
    key = " ".join(node2.out("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2])
    node1.run("mkdir -p /var/lib/stacklift && echo '%s %s' > /var/lib/stacklift/known_hosts" % (node2.address, key))
    return {"target_host": node2.address, "key_file": "/root/.ssh/id_ed25519"}


def test_1_checkpoint_refuses_bad_input_before_freezing(node1, stack):
    result, failed = run_module("node1", "container_checkpoint", {"name": "nosuch"})
    assert failed and "no container named 'nosuch' on this host" in result["msg"] and "modcache" in result["msg"]
    node1.run("podman create --name stopped %s >/dev/null" % REDIS)
    result, failed = run_module("node1", "container_checkpoint", {"name": "stopped"})
    assert failed and "container 'stopped' is created, not running" in result["msg"]


def test_2_checkpoint_check_mode_then_real_then_unchanged(node1, stack):
    args = {"name": "modcache", "archive_dir": ARCHIVE_DIR, "tcp_established": True, "file_locks": True}
    result, failed = run_module("node1", "container_checkpoint", args, check=True, diff=True)
    assert not failed and result["changed"] and result["diff"]["after"]["modcache"]["state"] == "checkpointed"
    assert node1.podman_json("inspect modcache")[0]["State"]["Running"]

    result, failed = run_module("node1", "container_checkpoint", args)
    assert not failed and result["changed"], result
    ck = result["checkpoints"][0]
    assert ck["archive"] == ARCHIVE and ck["size"] > 0 and ck["timings"]["frozen_time"] > 0
    assert node1.out("stat -c %%a %s %s" % (ARCHIVE_DIR, ARCHIVE)).split() == ["700", "600"]
    assert node1.out("sha256sum %s" % ARCHIVE).split()[0] == ck["sha256"]
    manifest = json.loads(node1.out("cat %s.stacklift.json" % ARCHIVE))
    assert manifest["criu_version"].startswith("4.") and manifest["sha256"] == ck["sha256"]
    assert not node1.podman_json("inspect modcache")[0]["State"]["Running"]

    result, failed = run_module("node1", "container_checkpoint", args)
    assert not failed and not result["changed"] and result["checkpoints"][0]["sha256"] == ck["sha256"]


def test_3_checkpoint_info_reads_the_archive(node1, stack):
    result, failed = run_module("node1", "checkpoint_info", {"path": ARCHIVE})
    assert not failed
    info = result["archive"]
    assert info["container_name"] == "modcache" and info["image_name"] == REDIS
    assert info["networks"][NET]["ips"] == [IP + "/24"] and info["compression"] == "zstd"
    assert info["created_by"]["host"] == "node1" and info["tcp_established"] is True
    assert info["sizes"]["memory_pages"] > 100000


def test_4_target_without_the_image_is_told_so(node1, node2, stack):
    # The archive is on node2 only after the transfer; check what node1's archive would need there.
    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=ARCHIVE), check=True)
    assert not failed and result["changed"] and result["bytes"] == 0
    assert node2.run("test -e %s" % ARCHIVE, check=False).returncode == 1

    # Host keys are checked strictly by default: an unknown target, or another key, gets nothing.
    node1.run("echo '%s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDK5GZ0fR8P1L7fwt6ZcwUeFzGwn4s9K3B0PjN4v9wqA' "
              "> /tmp/other_known_hosts; : > /tmp/no_known_hosts" % node2.address)
    for known, says in (("/tmp/no_known_hosts", "host key is not in /tmp/no_known_hosts"),
                        ("/tmp/other_known_hosts", "host key is not the one /tmp/other_known_hosts holds")):
        result, failed = run_module("node1", "checkpoint_transfer",
                                    dict(ssh_args(node1, node2), src=ARCHIVE, known_hosts_file=known))
        assert failed and says in result["msg"], result
        assert node2.run("test -e %s" % ARCHIVE, check=False).returncode == 1

    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=ARCHIVE))
    assert not failed and result["changed"] and result["bytes"] > 0, result
    assert node2.out("sha256sum %s" % ARCHIVE).split()[0] == result["sha256"]
    assert node2.out("stat -c %%a %s %s" % (ARCHIVE_DIR, ARCHIVE)).split() == ["700", "600"]
    assert node2.run("test -e %s.stacklift.json" % ARCHIVE, check=False).returncode == 0
    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=ARCHIVE))
    assert not failed and not result["changed"] and result["bytes"] == 0
    # A directory that exists keeps its mode (only what the transfer makes is 0700).
    node2.run("mkdir -p /tmp/shared && chmod 1777 /tmp/shared")
    result, failed = run_module("node1", "checkpoint_transfer",
                                dict(ssh_args(node1, node2), src=ARCHIVE, dest="/tmp/shared/a.tar"))
    assert not failed and node2.out("stat -c %a /tmp/shared") == "1777", result
    node2.run("rm -rf /tmp/shared")

    result, failed = run_module("node2", "checkpoint_info", {"path": ARCHIVE, "check_host": True})
    assert not failed and result["restorable"] is False
    assert any("image %s" % REDIS in b and "not on this host" in b for b in result["blockers"]), result["blockers"]
    result, failed = run_module("node2", "container_restore", {"archive": ARCHIVE})
    assert failed and "image_sync" in result["msg"]
    assert node2.run("podman container exists modcache", check=False).returncode == 1


def test_5_image_sync_streams_then_is_unchanged(node1, node2, stack):
    args = dict(ssh_args(node1, node2), archive=ARCHIVE)
    result, failed = run_module("node1", "image_sync", args, check=True)
    assert not failed and result["changed"] and result["action"] == "copied"
    assert node2.run("podman image exists %s" % REDIS, check=False).returncode == 1
    result, failed = run_module("node1", "image_sync", args)
    assert not failed and result["changed"] and result["action"] == "copied" and result["bytes"] > 10 ** 7
    source_id = node1.podman_json("image inspect %s" % REDIS)[0]["Id"]
    assert node2.podman_json("image inspect %s" % REDIS)[0]["Id"] == source_id
    result, failed = run_module("node1", "image_sync", args)
    assert not failed and not result["changed"] and result["action"] == "present"


def test_6_restore_check_mode_then_real_then_unchanged(node2, stack):
    args = {"archive": ARCHIVE, "tcp_established": True, "file_locks": True}
    result, failed = run_module("node2", "container_restore", args, check=True)
    assert not failed and result["changed"]
    assert node2.run("podman container exists modcache", check=False).returncode == 1

    result, failed = run_module("node2", "container_restore", args, diff=True)
    assert not failed and result["changed"], result
    assert result["container"]["state"] == "running" and result["container"]["ips"] == {NET: [IP]}
    # The same Redis process, its keys, its counter, and a TTL that kept counting.
    assert node2.out("podman exec modcache redis-cli info server | sed -n 's/^run_id://p'") == stack["run_id"]
    assert redis(node2, "modcache", "get", "visits") == "42"
    assert redis(node2, "modcache", "get", "session:alice") == "cart-3-items"
    assert 500 < int(redis(node2, "modcache", "ttl", "session:alice")) <= 600

    result, failed = run_module("node2", "container_restore", args)
    assert not failed and not result["changed"]


def test_7_service_probe_on_the_restored_container(node2, stack):
    result, failed = run_module("node2", "service_probe", {
        "container": "modcache", "probe": {"type": "redis", "stable_for": 1, "interval": 0.2}})
    assert not failed and result["ready"] and result["address"] == IP and result["attempts"] >= 5
    result, failed = run_module("node2", "service_probe", {"container": "modcache", "probe": {"type": "tcp", "port": 6379}})
    assert not failed and result["ready"]
    result, failed = run_module("node2", "service_probe", {"container": "modcache", "probe": {
        "type": "command", "command": ["redis-cli", "ping"], "progress_command": ["redis-cli", "incr", "visits"],
        "interval": 0.1}})
    assert not failed and result["ready"] and int(result["progress_value"]) > 42
    result, failed = run_module("node2", "service_probe", {
        "container": "modcache", "probe": {"type": "tcp", "port": 1, "retries": 3, "interval": 0.1}})
    assert failed and "not ready after 3 attempts" in result["msg"]


def test_8_restore_refuses_name_and_address_taken_and_wrong_subnet(node1, node2, stack):
    # Name taken: modcache runs on node2 now, from the same archive but with no record of it.
    node2.run("rm -rf /var/lib/stacklift/restored")
    result, failed = run_module("node2", "container_restore", {"archive": ARCHIVE})
    assert failed and "the name 'modcache' is taken" in result["msg"]
    # Address taken, under another name.
    result, failed = run_module("node2", "container_restore", {
        "archive": ARCHIVE, "name": "modcache2",
        "ignore_volumes": True})
    assert failed and "address %s on network '%s' is taken by container modcache" % (IP, NET) in result["msg"]
    # Wrong subnet on a host whose network was made differently.
    node1.run("podman rm -f -t 0 modcache stopped >/dev/null; podman network rm -f %s >/dev/null; "
              "podman network create --subnet 10.89.4.0/24 %s >/dev/null" % (NET, NET))
    result, failed = run_module("node1", "container_restore", {"archive": ARCHIVE})
    assert failed and "subnet 10.89.4.0/24, which does not hold the container's address %s" % IP in result["msg"]
    node1.run("podman network rm -f %s >/dev/null" % NET)
    result, failed = run_module("node1", "container_restore", {"archive": ARCHIVE})
    assert failed and "network '%s' is not on this host" % NET in result["msg"]


def test_9_an_interrupted_or_damaged_transfer_never_leaves_the_final_name(node1, node2, stack):
    big = ARCHIVE_DIR + "/big.bin"
    node1.run("mkdir -p %s && head -c 1G /dev/urandom > %s" % (ARCHIVE_DIR, big))
    node2.run("rm -f %s %s/.big.bin.part-*" % (big, ARCHIVE_DIR))
    # Without pipelining the module runs from a file whose name pkill can find.
    proc = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=big), background=True,
                      env={"ANSIBLE_PIPELINING": "False"})
    deadline = time.time() + 60
    while node2.run("ls %s/.big.bin.part-* >/dev/null 2>&1" % ARCHIVE_DIR, check=False).returncode != 0:
        assert time.time() < deadline and proc.poll() is None, "the transfer never started"
        time.sleep(0.05)
    # Cut the transfer halfway: kill the module's process on the sending host.
    killed = node1.run("pkill -KILL -f AnsiballZ_checkpoint_transfer", check=False).returncode == 0
    output = proc.communicate(timeout=60)[0].decode()
    assert killed and proc.returncode != 0, "the transfer was not cut: " + output[-2000:]
    assert node2.run("test -e %s" % big, check=False).returncode == 1, "an interrupted transfer left the final name"
    # A wrong checksum is refused before sending; the final name is never made.
    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=big, sha256="0" * 64))
    assert failed and "expected " + "0" * 64 in result["msg"]
    assert node2.run("test -e %s" % big, check=False).returncode == 1
    # Sent again, whole, it lands.
    result, failed = run_module("node1", "checkpoint_transfer", dict(ssh_args(node1, node2), src=big))
    assert not failed and result["changed"] and result["bytes"] == 2 ** 30
    assert node2.out("sha256sum %s" % big).split()[0] == node1.out("sha256sum %s" % big).split()[0]
    node1.run("rm -f %s" % big)
    node2.run("rm -f %s %s/.big.bin.part-*" % (big, ARCHIVE_DIR))


def test_postgres_probe_against_real_postgres(node1):
    node1.run("podman rm -f -t 0 probepg >/dev/null 2>&1; podman run -d --name probepg localhost/stacklift/postgres")
    try:
        result, failed = run_module("node1", "service_probe", {
            "container": "probepg", "probe": {"type": "postgres", "interval": 0.2, "timeout": 60}})
        assert not failed and result["ready"] and "SELECT 1" in result["detail"]
    finally:
        node1.run("podman rm -f -t 0 probepg")
