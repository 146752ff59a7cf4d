"""The lab itself: hosts where CRIU works, and a container moved between them with its memory."""

import subprocess
import time

import pytest

from labhosts import BIN, INVENTORY


def test_criu_check_passes_on_every_host(lab):
    for host in lab.values():
        res = host.run("criu check", check=False)
        assert res.returncode == 0 and "Looks good" in res.stdout + res.stderr, (host, res.stdout, res.stderr)
        version = host.out("criu --version | sed -n 's/^Version: //p'")
        assert tuple(int(x) for x in version.split(".")[:2]) >= (4, 2), (host, version)


def test_ansible_reaches_every_host(lab, ansible_env):
    res = subprocess.run([str(BIN / "ansible"), "-i", str(INVENTORY), "all", "-m", "ping", "-o"],
                         capture_output=True, text=True, env=ansible_env, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in lab:
        assert "%s | SUCCESS" % name in res.stdout


def test_hosts_are_separate_machines(lab):
    names = {h.out("hostname") for h in lab.values()}
    assert names == set(lab)
    addrs = {h.out("ip -4 -o addr show dev eth0 | awk '{print $4}'") for h in lab.values()}
    assert len(addrs) == len(lab)
    # Separate container storage: a container made on one host is unknown on the others.
    first, *others = lab.values()
    first.run("podman rm -f lab-probe >/dev/null 2>&1; podman create --name lab-probe localhost/stacklift/redis >/dev/null")
    try:
        for other in others:
            assert other.run("podman container exists lab-probe", check=False).returncode == 1
    finally:
        first.run("podman rm -f lab-probe")
    # No lab address leaks into the machine's own network namespace.
    own = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert all(addr.split("/")[0] not in own for addr in addrs)


def test_every_host_has_the_same_image_ids(lab, lab_images):
    for host in lab.values():
        have = {i["Id"] for i in host.podman_json("images --format json")}
        for ref, image_id in lab_images.items():
            assert image_id.split(":")[1] in have, (host, ref)


def test_processes_in_lab_containers_run_as_uid_0(node1):
    """CAP_SYS_RESOURCE is missing here, so CRIU can only dump uid-0 processes (see the notes)."""
    node1.run("podman rm -f uidcheck >/dev/null 2>&1; podman run -d --name uidcheck localhost/stacklift/postgres")
    try:
        deadline = time.time() + 30
        while node1.run("podman exec uidcheck pg_isready -q -h 127.0.0.1", check=False).returncode != 0:
            assert time.time() < deadline, node1.out("podman logs uidcheck")
            time.sleep(0.3)
        uids = node1.out("podman top uidcheck huser").split()[1:]
        assert uids and set(uids) == {"root"}, uids
    finally:
        node1.run("podman rm -f -t 0 uidcheck")


@pytest.fixture
def shopnet(node1, node2):
    for h in (node1, node2):
        h.run("podman network exists labnet || podman network create --subnet 10.89.7.0/24 labnet >/dev/null")
    yield "labnet"
    for h in (node1, node2):
        h.run("podman rm -f -t 0 labcache >/dev/null 2>&1; podman network rm -f labnet >/dev/null 2>&1", check=False)


def test_redis_moves_to_node2_with_its_memory(node1, node2, shopnet, record_timing):
    """The raw Podman + CRIU path every stacklift module builds on."""
    node1.run("podman run -d --name labcache --network %s --ip 10.89.7.5 localhost/stacklift/redis" % shopnet)
    deadline = time.time() + 20
    while node1.run("podman exec labcache redis-cli ping", check=False).stdout.strip() != "PONG":
        assert time.time() < deadline
        time.sleep(0.2)
    node1.run("podman exec labcache sh -c 'redis-cli set cart:alice 3 EX 600 && redis-cli incrby hits 41 "
              "&& redis-cli incr hits && redis-cli set forever yes'")
    run_id = node1.out("podman exec labcache redis-cli info server | sed -n 's/^run_id://p'")

    t0 = time.time()
    node1.run("podman container checkpoint labcache --export /tmp/labcache.tar.zst --compress zstd "
              "--tcp-established --file-locks")
    t1 = time.time()
    node1.run("scp -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
              "/tmp/labcache.tar.zst %s:/tmp/labcache.tar.zst" % node2.address)
    t2 = time.time()
    node2.run("podman container restore --import /tmp/labcache.tar.zst --tcp-established --file-locks")
    t3 = time.time()
    size = int(node1.out("stat -c %s /tmp/labcache.tar.zst"))
    node1.run("rm -f /tmp/labcache.tar.zst; podman rm -f labcache")
    node2.run("rm -f /tmp/labcache.tar.zst")

    # Same process (Redis picks a new run_id at every start), same memory, TTL still counting.
    assert node2.out("podman exec labcache redis-cli info server | sed -n 's/^run_id://p'") == run_id
    assert node2.out("podman exec labcache redis-cli get hits") == "42"
    assert node2.out("podman exec labcache redis-cli get forever") == "yes"
    ttl = int(node2.out("podman exec labcache redis-cli ttl cart:alice"))
    assert 560 < ttl <= 600, ttl
    inspect = node2.podman_json("inspect labcache")[0]
    assert inspect["State"]["Running"] and inspect["NetworkSettings"]["Networks"][shopnet]["IPAddress"] == "10.89.7.5"
    record_timing("lab_proof_redis", {"checkpoint_s": round(t1 - t0, 3), "transfer_s": round(t2 - t1, 3),
                                      "restore_s": round(t3 - t2, 3), "archive_bytes": size})
