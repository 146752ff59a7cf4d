"""The journaled window's fault matrix, on the lab, with a live client.

Every case ends with every service serving on exactly one host with its state (the shoppers'
sessions, carts and orders, Redis keys with their TTLs, the shop's counters and database
connections: `shopper verify`), the client having seen a pause and never an error, and a second
migration then succeeding.
"""

import json
import time

from labhosts import REPO
from shoplab import (
    ARCHIVE_DIR, CONTAINERS, LiveClient, demo_stack, marker_steps, playbook, running, verify)

MIGRATE = REPO / "migrate_stack.yml"


def served_from(node_serving, node_other):
    """Every service runs on NODE_SERVING; on the other host nothing of the stack can serve."""
    assert running(node_serving) == set(CONTAINERS)
    others = running(node_other)
    if others:  # copies left behind a fence the commit never lifted: they cannot serve
        assert node_other.run("nft list table inet stacklift_shop", check=False).returncode == 0, others


def migrates_afterwards(node1, node2, shop):
    res = playbook(MIGRATE, report_dir=shop["reports"])
    assert res.returncode == 0, res.stdout[-5000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    # both fences lifted: the target's at the commit, the source's answers for its checkpointed containers after it
    assert node2.run("nft list table inet stacklift_shop", check=False).returncode != 0
    assert node1.run("nft list table inet stacklift_shop", check=False).returncode != 0
    ok, detail = verify(shop["state"])
    assert ok, detail


def ends_rolled_back_then_migrates(node1, node2, shop, returncode, out):
    """The run rolled back: the stack serves on node1 with its state, nothing of it on node2; then it migrates."""
    assert returncode != 0 and "the stack serves on node1 again" in out, out[-4000:]
    served_from(node1, node2)
    assert running(node2) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail
    migrates_afterwards(node1, node2, shop)


def wait_for_step(host, step, proc, timeout=240):
    deadline = time.time() + timeout
    while step not in marker_steps(host):
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.02)


def stack_with(tmp_path, **changes):
    stack = demo_stack()
    for name, change in changes.items():
        next(s for s in stack["services"] if s["name"] == name).update(change)
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"stacklift_stack": stack}))
    return "@%s" % path


def test_one_container_of_a_tier_fails_to_checkpoint(node1, node2, shop, background):
    # Told to close its TCP connections rather than keep them, CRIU refuses the cache: the shop holds
    # connections to it ("Connected TCP socket, consider using --tcp-established").
    client = LiveClient(shop["tmp"], background)
    res = playbook(MIGRATE, "-e", stack_with(shop["tmp"], cache={"tcp": "close"}), report_dir=shop["reports"])
    client.result(res.stdout + "\n".join(node1.out("cat %s/shop.journal" % ARCHIVE_DIR).splitlines()[-20:]))
    assert "cache: podman container checkpoint shop-cache failed" in res.stdout
    steps = marker_steps(node1)
    assert "rolled_back" in steps and "unfenced" in steps
    ends_rolled_back_then_migrates(node1, node2, shop, res.returncode, res.stdout)


def drop_off_the_network(host):
    """The host loses its link: nothing in or out of eth0 (its containers' bridge still works inside)."""
    host.run_inside("nft -f - <<'EOF'\ntable inet stacklift_test {\n"
                    " chain i { type filter hook input priority -300; iifname \"eth0\" drop; }\n"
                    " chain o { type filter hook output priority -300; oifname \"eth0\" drop; }\n"
                    " chain f { type filter hook forward priority -300; iifname \"eth0\" drop; oifname \"eth0\" drop; }\n"
                    "}\nEOF")


def test_the_target_drops_off_the_network_after_it_restored_a_tier(node1, node2, shop, background):
    client = LiveClient(shop["tmp"], background)
    proc = playbook(MIGRATE, "-e", "stacklift_window_timeout=60", background=True, report_dir=shop["reports"])
    background.append(proc)
    wait_for_step(node2, "restored", proc)
    drop_off_the_network(node2)
    out = proc.communicate(timeout=600)[0]
    # The target's copies never left their fence, so the source came back without waiting for it.
    assert proc.returncode != 0 and "the stack serves on node1 again" in out, out[-5000:]
    client.result()
    assert running(node1) == set(CONTAINERS)
    ok, detail = verify(shop["state"])
    assert ok, detail
    journal = shop["reports"].parent / "journal"
    assert not (journal / "shop.lock").exists()  # given up, the run left open for the target's copies

    node2.run_inside("nft delete table inet stacklift_test")
    served_from(node1, node2)
    # The next run finishes the rollback on the target (its fenced copies go), then migrates.
    res = playbook(MIGRATE, report_dir=shop["reports"])
    assert res.returncode == 0 and "it had not committed: rolling it back" in res.stdout, res.stdout[-5000:]
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_the_source_is_unreachable_for_a_while_after_the_fence(node1, node2, shop, background):
    """The source's call goes on without the controller; the target commits; the clean-up waits."""
    client = LiveClient(shop["tmp"], background)
    proc = playbook(MIGRATE, background=True, report_dir=shop["reports"])
    background.append(proc)
    wait_for_step(node1, "fenced", proc)
    # The controller loses node1 (node1 still reaches node2 and the clients).
    node1.run_inside("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain i { type filter hook input priority -300; "
                     "ip saddr 10.231.0.1 tcp dport 22 drop; }\n}\nEOF")
    out = proc.communicate(timeout=600)[0]
    client.result()
    assert proc.returncode != 0, out[-4000:]
    assert running(node2) == set(CONTAINERS)  # committed: the stack serves on the target
    ok, detail = verify(shop["state"])
    assert ok, detail
    node1.run_inside("nft delete table inet stacklift_test")
    res = playbook(MIGRATE, report_dir=shop["reports"])
    assert res.returncode == 0 and "it had committed: finishing it" in res.stdout, res.stdout[-5000:]
    assert running(node2) == set(CONTAINERS) and node1.out("podman ps -a --format '{{.Names}}'") == ""
    ok, detail = verify(shop["state"])
    assert ok, detail


def test_the_targets_disk_fills_during_the_transfer(node1, node2, shop, background):
    client = LiveClient(shop["tmp"], background)
    proc = playbook(MIGRATE, "-e", "stacklift_window_timeout=60", background=True, report_dir=shop["reports"])
    background.append(proc)
    wait_for_step(node1, "fenced", proc)
    # After the preflight measured the space: the target's archive directory now holds 6 MB.
    node2.run("mount -t tmpfs -o size=6m stacklift-test %s" % ARCHIVE_DIR)
    try:
        out = proc.communicate(timeout=600)[0]
        client.result()
    finally:
        node2.run("umount -l %s" % ARCHIVE_DIR, check=False)
    assert "No space left on device" in out or "Failure" in out, out[-4000:]
    ends_rolled_back_then_migrates(node1, node2, shop, proc.returncode, out)


def test_an_archive_corrupted_in_transit(node1, node2, shop, background):
    """What lands on the target is not what left the source: the end-to-end sha256 catches it."""
    # A tee on the target's PATH that changes byte 101 of the database's archive as it lands.
    node2.run("cat > /usr/local/bin/tee <<'EOF'\n#!/bin/sh\ncase \"$1\" in */.shop-db.tar.zst.part-*) "
              "{ head -c 100; head -c 1 >/dev/null; printf X; cat; } | /usr/bin/tee \"$@\"; exit;; esac\n"
              "exec /usr/bin/tee \"$@\"\nEOF\nchmod +x /usr/local/bin/tee")
    try:
        client = LiveClient(shop["tmp"], background)
        res = playbook(MIGRATE, "-e", "stacklift_window_timeout=60", report_dir=shop["reports"])
        client.result()
    finally:
        node2.run("rm -f /usr/local/bin/tee")
    assert "shop-db.tar.zst arrived with sha256" in res.stdout, res.stdout[-4000:]
    ends_rolled_back_then_migrates(node1, node2, shop, res.returncode, res.stdout)


def test_the_transfer_is_cut_off(node1, node2, shop, background):
    """node1 -> node2 goes silent mid-window: the stalled transfer gives up, and the source comes back."""
    client = LiveClient(shop["tmp"], background)
    proc = playbook(MIGRATE, "-e", "stacklift_window_timeout=45", background=True, report_dir=shop["reports"])
    background.append(proc)
    wait_for_step(node1, "fenced", proc)
    node2.run_inside("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain i { type filter hook input priority -300; "
                     "ip saddr %s tcp dport 22 drop; }\n}\nEOF" % node1.address)
    try:
        out = proc.communicate(timeout=600)[0]
        client.result()
    finally:
        node2.run_inside("nft delete table inet stacklift_test")
    ends_rolled_back_then_migrates(node1, node2, shop, proc.returncode, out)


def test_a_tool_the_window_needs_missing_on_a_host_is_refused_before_anything_is_fenced(node1, node2, shop):
    node2.run("mv /usr/bin/zstd /usr/bin/zstd.stacklift-test")
    try:
        res = playbook(MIGRATE, report_dir=shop["reports"])
    finally:
        node2.run("mv /usr/bin/zstd.stacklift-test /usr/bin/zstd")
    assert res.returncode != 0
    assert "node2: the migration needs zstd on this host, which is not on its PATH" in res.stdout, res.stdout[-3000:]
    assert "nothing was touched" in res.stdout
    assert "fenced" not in marker_steps(node1)
    assert running(node1) == set(CONTAINERS)
    assert not (shop["reports"].parent / "journal" / "shop.lock").exists()  # the refused run is closed
    migrates_afterwards(node1, node2, shop)


def switch_then_fail(tmp_path):
    """Traffic tasks that switch as the demo does, then fail when they sent it to the target."""
    switch = tmp_path / "switch_then_fail.yml"
    switch.write_text(
        "- name: Switch the traffic as the demo does\n"
        "  ansible.builtin.include_tasks: %s\n"
        "- name: Then fail, as a load balancer that does not confirm\n"
        "  ansible.builtin.fail:\n"
        "    msg: the load balancer did not confirm the switch\n"
        "  when: stacklift_traffic_to == 'target'\n" % (REPO / "examples" / "shop" / "traffic.yml"))
    return switch


def test_the_switch_at_the_cut_fails_the_run_rolls_back_and_the_traffic_comes_back(
        node1, node2, shop, background, tmp_path):
    """The demo switches at the cut (stacklift_traffic_switch_at: cut): the traffic went to node2, whose fence
    answers it, then the switch failed before the commit. The run rolls back, sending the traffic back to node1 first:
    the shopper holding its connection sees a pause, not an error, and its cart is whole on node1."""
    client = LiveClient(shop["tmp"], background)
    res = playbook(MIGRATE, "-e", "stacklift_traffic_switch_tasks=%s" % switch_then_fail(tmp_path),
                   report_dir=shop["reports"])
    assert "the load balancer did not confirm the switch" in res.stdout
    assert "Send the traffic back to the source" in res.stdout
    client.result(res.stdout)
    ends_rolled_back_then_migrates(node1, node2, shop, res.returncode, res.stdout)


def test_a_step_after_the_commit_fails_nothing_rolls_back_and_the_next_run_finishes(
        node1, node2, shop, background, tmp_path):
    """The traffic switch (at the commit) reports a failure once the stack serves on node2 (a load balancer's API
    that did not confirm, say): the targets may have taken writes already, so the run must not roll back to node1.
    It fails saying so, leaving the run open; the next run finishes it."""
    switch = switch_then_fail(tmp_path)
    client = LiveClient(shop["tmp"], background)
    res = playbook(MIGRATE, "-e", "stacklift_traffic_switch_tasks=%s" % switch, "-e", "stacklift_traffic_switch_at=commit",
                   report_dir=shop["reports"])
    assert res.returncode != 0 and "shop was committed and runs on node2" in res.stdout, res.stdout[-5000:]
    assert "the load balancer did not confirm the switch" in res.stdout
    assert "the stack serves on node1 again" not in res.stdout and "rolled_back" not in marker_steps(node1)
    # The stack serves on node2 only; node1 keeps its checkpointed containers (the clean-up did not run).
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    assert "removed" not in marker_steps(node1)
    assert not (shop["reports"].parent / "journal" / "shop.lock").exists()  # given up, the run left open
    # The next run finds the committed run open and finishes it: traffic, health checks, the source cleaned.
    res = playbook(MIGRATE, report_dir=shop["reports"])
    client.result(res.stdout)
    assert res.returncode == 0 and "it had committed: finishing it" in res.stdout, res.stdout[-5000:]
    assert running(node2) == set(CONTAINERS) and marker_steps(node1)[-1] == "removed"
    ok, detail = verify(shop["state"])
    assert ok, detail
