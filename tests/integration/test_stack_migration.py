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


def playbook(path, *extra, env=None, background=False, report_dir=None, new_session=False):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(SHOP_INVENTORY), str(path)]
    if report_dir:
        # Each test its own journal, next to its reports.
        cmd += ["-e", "stacklift_report_dir=%s" % report_dir,
                "-e", "stacklift_journal_dir=%s" % (report_dir.parent / "journal")]
    cmd += list(extra)
    e = ansible_env(**(env or {}))
    if background:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=new_session)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=900, check=False)


def shopper(*args, background=False):
    cmd = ["ip", "netns", "exec", CLIENT_NETNS, sys.executable, str(SHOPPER)] + list(args)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def remove_shop(*hosts):
    for h in hosts:
        h.run("nft delete table inet stacklift_test 2>/dev/null; nft delete table inet stacklift_shop 2>/dev/null; "
              "podman rm -f -t 0 %s >/dev/null 2>&1; "
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
    assert node1.out("ls %s 2>/dev/null | grep -c tar || true" % ARCHIVE_DIR) == "0"
    # The hosts' markers record every step, the source's up to its clean-up, the target's to the commit.
    assert marker_steps(node1)[-1] == "removed" and "committed" in marker_steps(node2)

    ok, detail = verify(shop["state"])
    assert ok, detail
    soak = json.loads(soak_out.read_text())
    assert soak["errors"] == [] and soak["requests"] > 20, (soak["errors"], soak_log)
    assert soak["connections"] == 1
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


class LiveClient:
    """A shopper holding one keep-alive connection, sending requests back to back."""

    def __init__(self, tmp, background):
        self.stop, self.out = tmp / "stop-soak", tmp / "soak.json"
        self.proc = shopper("soak", str(self.out), "--stop", str(self.stop), background=True)
        background.append(self.proc)
        time.sleep(1)

    def result(self):
        time.sleep(1)
        self.stop.write_text("")
        log = self.proc.communicate(timeout=300)[0]
        soak = json.loads(self.out.read_text())
        # A pause, never an error, and the same connection throughout; nothing counted twice.
        assert soak["errors"] == [] and soak["connections"] == 1, (soak["errors"], soak["connections"], log)
        assert soak["cart"] == {"tea": soak["requests"]}
        return soak


def test_rollback_under_a_live_client_when_a_target_tier_never_gets_ready(node1, node2, shop, background):
    client = LiveClient(shop["tmp"], background)
    block_shop_port(node2)
    res = playbook(REPO / "migrate_stack.yml", "-e", "stacklift_probe_timeout=6", report_dir=shop["reports"])
    soak = client.result()
    assert res.returncode != 0, res.stdout[-3000:]
    assert "rolled back; the stack serves on the source again" in res.stdout
    assert running(node1) == set(CONTAINERS) and running(node2) == set()
    # The target's fence and archives are gone with its copies.
    assert node2.run("nft list table inet stacklift_shop", check=False).returncode != 0
    assert node2.out("ls %s | grep -c tar.zst || true" % ARCHIVE_DIR) == "0"
    ok, detail = verify(shop["state"])
    assert ok, detail
    report = report_of(shop["reports"])
    assert report["outcome"] == "rolled_back" and "app: http probe not ready after" in report["error"]
    assert all("rollback" in s["phases"] for s in report["services"].values()), report["services"]
    assert report["downtime_s"] > 0 and soak["max_latency_s"] >= report["downtime_s"] * 0.5

    node2.run("nft delete table inet stacklift_test")
    res = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])
    assert res.returncode == 0, res.stdout[-4000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail


def marker_steps(host):
    out = host.run("cat %s/shop.journal 2>/dev/null" % ARCHIVE_DIR, check=False).stdout
    return [json.loads(line)["step"] for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("kill_after", ["fenced", "restored"])
def test_controller_killed_in_the_window_then_a_rerun_ends_with_the_stack_on_one_host(
        node1, node2, shop, background, kill_after):
    """SIGKILL of ansible-playbook (and its workers) in the window; the next run recovers from the journal."""
    client = LiveClient(shop["tmp"], background)
    proc = playbook(REPO / "migrate_stack.yml", background=True, report_dir=shop["reports"], new_session=True)
    background.append(proc)
    where = node1 if kill_after == "fenced" else node2
    deadline = time.time() + 240
    while kill_after not in marker_steps(where):
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.02)
    os.killpg(proc.pid, 9)
    proc.wait()
    journal = shop["reports"].parent / "journal"
    lock = json.loads((journal / "shop.lock").read_text())
    assert lock["pid"] == proc.pid  # the dead controller's lock is left behind ...

    res = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])  # ... and recognised
    client.result()
    assert res.returncode == 0, res.stdout[-5000:]
    assert "left open by a controller that is gone" in res.stdout
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    assert not (journal / "shop.lock").exists()
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_two_runs_on_one_stack_at_once_the_second_is_refused_naming_the_first(node1, node2, shop, background):
    first = playbook(REPO / "migrate_stack.yml", background=True, report_dir=shop["reports"])
    background.append(first)
    journal = shop["reports"].parent / "journal"
    deadline = time.time() + 120
    while not (journal / "shop.lock").exists():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    holder = json.loads((journal / "shop.lock").read_text())
    second = playbook(REPO / "migrate_stack.yml", report_dir=shop["reports"])
    out = first.communicate(timeout=600)[0]
    assert second.returncode != 0 and "stack is locked by run %s (pid %d" % (holder["run"], holder["pid"]) in second.stdout
    assert first.returncode == 0, out[-4000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_rollback_playbook_after_a_finished_migration_changes_nothing(node1, node2, shop):
    res = playbook(REPO / "migrate_stack.yml", "-e", "stacklift_cleanup_source=false", report_dir=shop["reports"])
    assert res.returncode == 0, res.stdout[-4000:]
    res = playbook(REPO / "playbooks" / "rollback.yml", report_dir=shop["reports"])
    assert res.returncode == 0 and "nothing to roll back" in res.stdout, res.stdout[-3000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail
