"""The demo stack migrated between the lab's hosts, with its users' state; bad input; rollbacks."""

import glob
import json
import os
import tempfile
import time

import pytest

from labhosts import REPO
from shoplab import (
    ARCHIVE_DIR, CONTAINERS, SHOP_INVENTORY, LiveClient, block_shop_port, marker_steps, playbook, report_of, running,
    shopper, verify)


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


@pytest.mark.parametrize("kill_after", ["fenced", "restored", "committed"])
def test_controller_killed_in_the_window_then_a_rerun_ends_with_the_stack_on_one_host(
        node1, node2, shop, background, kill_after):
    """SIGKILL of ansible-playbook (and its workers) in the window; the next run recovers from the journal."""
    client = LiveClient(shop["tmp"], background)
    proc = playbook(REPO / "migrate_stack.yml", background=True, report_dir=shop["reports"], new_session=True)
    background.append(proc)
    where = node1 if kill_after == "fenced" else node2  # committed: the target lifted its fence
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
    client = LiveClient(shop["tmp"], background)
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
    client.result()
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
