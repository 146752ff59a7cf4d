"""The demo stack migrated between the lab's hosts, with its users' state; bad input; rollbacks."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from labhosts import BIN, INVENTORY, REPO, ansible_env

SHOP_INVENTORY = REPO / "examples" / "shop" / "inventory.yml"
SHOPPER = REPO / "examples" / "shop" / "shopper.py"
CLIENT_NETNS = "stacklift-client"
CONTAINERS = ("shop-app", "shop-cache", "shop-db")
ARCHIVE_DIR = "/var/lib/stacklift/checkpoints"


def playbook(path, *extra, env=None, background=False, report_dir=None):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(SHOP_INVENTORY), str(path)]
    if report_dir:
        cmd += ["-e", "stacklift_report_dir=%s" % report_dir]
    cmd += list(extra)
    e = ansible_env(**(env or {}))
    if background:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=900, check=False)


def shopper(*args, background=False):
    cmd = ["ip", "netns", "exec", CLIENT_NETNS, sys.executable, str(SHOPPER)] + list(args)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def remove_shop(*hosts):
    for h in hosts:
        h.run("nft delete table inet stacklift_test 2>/dev/null; podman rm -f -t 0 %s >/dev/null 2>&1; "
              "podman network rm -f shopnet >/dev/null 2>&1; rm -rf %s /var/lib/stacklift/restored"
              % (" ".join(CONTAINERS), ARCHIVE_DIR), check=False)


def running(host):
    return {c["Names"][0] for c in host.podman_json("ps --format json")} & set(CONTAINERS)


@pytest.fixture
def background():
    """Processes a test starts in the background; whatever still runs at its end is stopped."""
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def shop(node1, node2, tmp_path):
    """The shop deployed on node1 with five shoppers' state; removed from both hosts afterwards."""
    remove_shop(node1, node2)
    res = playbook(REPO / "examples" / "shop" / "deploy.yml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    state = tmp_path / "shoppers.json"
    res = shopper("drive", str(state))
    assert res.returncode == 0, res.stdout + res.stderr
    yield {"state": str(state), "reports": tmp_path / "reports", "tmp": tmp_path}
    remove_shop(node1, node2)


def verify(state):
    res = shopper("verify", state)
    return res.returncode == 0, res.stdout + res.stderr


def report_of(report_dir):
    files = sorted(glob.glob(str(report_dir / "shop-*.json")))
    assert files, "no migration report in %s" % report_dir
    return json.loads(open(files[-1]).read())


def test_demo_stack_migrates_with_its_state_and_serves_every_request(node1, node2, shop, record_timing, background):
    stop = shop["tmp"] / "stop-soak"
    soak_out = shop["tmp"] / "soak.json"
    soak = shopper("soak", str(soak_out), "--stop", str(stop), background=True)
    background.append(soak)
    time.sleep(1)
    res = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])
    time.sleep(1)
    stop.write_text("")
    soak_log = soak.communicate(timeout=180)[0]
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]

    # Everything now runs on node2, nothing on node1; no archive is left behind.
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    assert node1.out("podman ps -a --format '{{.Names}}'").split() == []
    assert node1.out("ls %s 2>/dev/null | wc -l" % ARCHIVE_DIR) == "0"

    ok, detail = verify(shop["state"])
    assert ok, detail
    soak = json.loads(soak_out.read_text())
    assert soak["errors"] == [] and soak["requests"] > 20, (soak["errors"], soak_log)
    # Not one request lost: every cart POST the client made is in its cart.
    assert soak["cart"] == {"tea": soak["requests"]}

    report = report_of(shop["reports"])
    assert report["stack"] == "shop" and report["source"] == "node1" and report["target"] == "node2"
    assert report["outcome"] == "migrated" and 0 < report["downtime_s"] < 60
    for name in ("db", "cache", "app"):
        phases = report["services"][name]["phases"]
        assert set(phases) >= {"fence", "checkpoint", "transfer", "restore", "ready"}, (name, phases)
        assert report["services"][name]["archive_bytes"] > 0
        assert phases["fence"]["start"] <= phases["checkpoint"]["start"] <= phases["restore"]["start"]
    # Dependency-first: the app is restored only after db and cache are ready.
    assert report["services"]["app"]["phases"]["restore"]["start"] >= max(
        report["services"][n]["phases"]["ready"]["end"] for n in ("db", "cache"))
    assert glob.glob(str(shop["reports"] / "shop-*.svg")) and glob.glob(str(shop["reports"] / "shop-*.txt"))
    record_timing("demo_migration", {"downtime_s": report["downtime_s"], "soak_requests": soak["requests"],
                                     "soak_max_latency_s": round(soak["max_latency_s"], 3),
                                     "archive_bytes": {n: s["archive_bytes"] for n, s in report["services"].items()}})


@pytest.mark.parametrize("change,message", [
    (lambda s: s["services"][0].update(depends_on=["app"]), "depends_on has a cycle: db -> app -> db"),
    (lambda s: s["services"][2].update(depends_on=["db", "queue"]), "'app' depends on 'queue', which is not a service"),
    (lambda s: s["services"][1].update(name="db"), "duplicate service name 'db'"),
    (lambda s: s["services"][1].update(container="nope"), "service 'cache': no container 'nope' on node1"),
])
def test_bad_stack_descriptions_fail_before_anything_is_fenced(node1, shop, change, message):
    import yaml
    stack = yaml.safe_load((SHOP_INVENTORY.parent / "group_vars" / "all.yml").read_text())["stacklift_stack"]
    change(stack)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"stacklift_stack": stack}, f)
    res = playbook(REPO / "migrate_stack.yml", "-e", "@" + f.name, report_dir=shop["reports"])
    os.unlink(f.name)
    assert res.returncode != 0 and message in res.stdout, res.stdout[-3000:]
    # Nothing was touched: no fence, no checkpoint, the shop serves on node1.
    for c in CONTAINERS:
        pid = node1.out("podman inspect -f '{{.State.Pid}}' %s" % c)
        assert node1.run("nsenter -t %s -n nft list table inet stacklift_fence" % pid, check=False).returncode != 0
    assert running(node1) == set(CONTAINERS)
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_target_network_with_another_subnet_is_refused_in_preflight(node1, node2, shop):
    node2.run("podman network create --subnet 10.89.99.0/24 shopnet >/dev/null")
    res = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])
    assert res.returncode != 0
    assert "node2: network 'shopnet' here has subnet 10.89.99.0/24, the stack needs 10.89.10.0/24" in res.stdout
    assert "nothing was touched" in res.stdout
    assert running(node1) == set(CONTAINERS)


def block_shop_port(host):
    """The target host cannot reach the shop's port: that tier never gets ready there."""
    host.run("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain out { type filter hook output priority -300; "
             "ip daddr 10.89.10.4 tcp dport 8080 drop; }\n}\nEOF")


def test_rollback_when_a_target_tier_never_gets_ready_then_a_second_run_works(node1, node2, shop):
    block_shop_port(node2)
    res = playbook(REPO / "migrate_stack.yml", "-e", "stacklift_probe_timeout=6", report_dir=shop["reports"])
    assert res.returncode != 0, res.stdout[-3000:]
    assert "rolled back; the stack serves on the source again" in res.stdout
    assert "Wait until ready, tier 1" in res.stdout
    assert running(node1) == set(CONTAINERS) and running(node2) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail
    report = report_of(shop["reports"])
    assert report["outcome"] == "rolled_back" and report["downtime_s"] is None
    assert "Probe readiness on the target: app: http probe not ready after" in report["error"]

    node2.run("nft delete table inet stacklift_test")
    node2.run("rm -rf /var/lib/stacklift/restored")
    res = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])
    assert res.returncode == 0, res.stdout[-4000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail


def cut_transfer_halfway(node1, node2, shop, background, target_goes_away=False):
    """Start a migration, slow node1 -> node2 down, and kill the sender while an archive is in flight."""
    # Slow node1 -> node2 SSH down, so the transfer can be cut while it runs.
    node2.run("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain in { type filter hook input priority -300; "
              "ip saddr %s tcp dport 22 limit rate over 400 kbytes/second drop; }\n}\nEOF" % node1.address)
    proc = playbook(REPO / "migrate_stack.yml", env={"ANSIBLE_PIPELINING": "False"}, background=True,
                    report_dir=shop["reports"])
    background.append(proc)
    deadline = time.time() + 240
    while node2.run("ls %s/.*.part-* >/dev/null 2>&1" % ARCHIVE_DIR, check=False).returncode != 0:
        assert time.time() < deadline and proc.poll() is None, "no transfer started: " + (proc.stdout.read()
                                                                                          if proc.poll() else "")
        time.sleep(0.05)
    # Kill the module's Python (not the shell around it): the task fails, as when the sender dies.
    if target_goes_away:
        # The controller loses node2 (tests reach its namespace directly, not over SSH).
        node2.run_inside("nft add rule inet stacklift_test in ip saddr 10.231.0.1 tcp dport 22 drop")
    killed = node1.run("pkill -KILL -f '^/usr/bin/python3 .*AnsiballZ_checkpoint_transfer'", check=False).returncode == 0
    return proc, killed


def test_rollback_when_the_transfer_is_cut_halfway(node1, node2, shop, background):
    proc, killed = cut_transfer_halfway(node1, node2, shop, background)
    out = proc.communicate(timeout=300)[0]
    node2.run("nft delete table inet stacklift_test")
    assert killed and proc.returncode != 0, out[-3000:]
    assert "rolled back; the stack serves on the source again" in out, out[-4000:]
    assert running(node1) == set(CONTAINERS) and running(node2) == set()
    # The rollback took every archive, whole or cut off, away from the target.
    assert node2.out("ls -A %s | wc -l" % ARCHIVE_DIR) == "0"
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_rollback_when_the_target_goes_away_mid_migration(node1, node2, shop, background):
    proc, killed = cut_transfer_halfway(node1, node2, shop, background, target_goes_away=True)
    out = proc.communicate(timeout=600)[0]
    node2.run_inside("nft delete table inet stacklift_test")
    assert killed and proc.returncode != 0, out[-3000:]
    assert "rolled back; the stack serves on the source again" in out, out[-4000:]
    assert running(node1) == set(CONTAINERS) and running(node2) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail
