"""Fleet migrations on a three-host lab: node1 drained of three stacks (two shops, a Redis) at once,
placed by capacity on node2 and node3, each with a client; one stack that rolls back while the others
move; a stack too big for any target; --check."""

import glob
import json
import subprocess
import sys
import time

import pytest
import yaml

from labhosts import BIN, INVENTORY, REPO, ansible_env
from shoplab import ARCHIVE_DIR, CLIENT_NETNS, SHOPPER, block_shop_port

FLEET = REPO / "examples" / "fleet" / "fleet.stacks.yml"
SECRETS = REPO / "examples" / "shop" / "group_vars" / "all" / "secrets.yml"
STACKS = {"shop": ("shop-db", "shop-cache", "shop-app"), "shop2": ("shop2-db", "shop2-cache", "shop2-app"),
          "sessions": ("sessions-cache",)}
SHOPS = {"shop": "10.89.10.4", "shop2": "10.89.11.4"}


def fleet_play(path, *extra, tmp=None):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(FLEET), "-e", "@%s" % SECRETS, str(path)]
    if tmp:
        cmd += ["-e", "stacklift_report_dir=%s" % (tmp / "reports"), "-e", "stacklift_journal_dir=%s" % (tmp / "journal")]
    return subprocess.run(cmd + list(extra), env=ansible_env(), capture_output=True, text=True, timeout=1200,
                          check=False)


def where(hosts):
    """{stack: [hosts it runs on]} (all its containers running there)."""
    out = {}
    for name, containers in STACKS.items():
        out[name] = [h.name for h in hosts
                     if set(containers) <= set(h.out("podman ps --format '{{.Names}}'").split())]
    return out


def in_client(args, env=None, background=False):
    cmd = ["ip", "netns", "exec", CLIENT_NETNS] + args
    e = dict(ansible_env(), **(env or {}))
    if background:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300, check=False)


def cache_password():
    res = subprocess.run([str(BIN / "ansible"), "-i", str(FLEET), "localhost", "-e", "@%s" % SECRETS, "-m", "debug",
                          "-a", "msg={{ shop_cache_password }}"], env=ansible_env(), capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(res.stdout.split("=>", 1)[1])["msg"]


@pytest.fixture
def fleet(node1, node2, node3, tmp_path, background):
    """The three stacks on node1, shoppers' state in both shops, a client on each stack."""
    hosts = (node1, node2, node3)
    assert fleet_play(REPO / "examples" / "shop" / "reset.yml").returncode == 0
    for name, net in (("shop", 10), ("shop2", 11)):
        res = fleet_play(REPO / "examples" / "shop" / "deploy.yml",
                         "-e", '{"stacklift_stack": "{{ hostvars.stack_%s.stacklift_stack_description }}"}' % name,
                         "-e", '{"shop_addresses": {"db": "10.89.%d.2", "cache": "10.89.%d.3", "app": "10.89.%d.4"}}'
                         % (net, net, net))
        assert res.returncode == 0, res.stdout[-3000:]
    res = fleet_play(REPO / "examples" / "fleet" / "sessions.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    stop = tmp_path / "stop"
    clients = {}
    for name, address in SHOPS.items():
        res = in_client([sys.executable, str(SHOPPER), "drive", str(tmp_path / ("%s.json" % name))],
                        env={"SHOP_ADDRESS": address})
        assert res.returncode == 0, res.stdout + res.stderr
        clients[name] = in_client([sys.executable, str(SHOPPER), "soak", str(tmp_path / ("%s-soak.json" % name)),
                                   "--stop", str(stop)], env={"SHOP_ADDRESS": address}, background=True)
    clients["sessions"] = in_client([sys.executable, str(REPO / "examples" / "fleet" / "counter.py"), "10.89.12.3",
                                     str(tmp_path / "sessions-soak.json"), "--stop", str(stop)],
                                    env={"REDIS_PASSWORD": cache_password()}, background=True)
    background.extend(clients.values())
    time.sleep(1)
    assert where(hosts) == {"shop": ["node1"], "shop2": ["node1"], "sessions": ["node1"]}
    yield {"tmp": tmp_path, "stop": stop, "clients": clients, "hosts": hosts}
    fleet_play(REPO / "examples" / "shop" / "reset.yml")


def clients_saw(f):
    time.sleep(1)
    f["stop"].write_text("")
    seen = {}
    for name, proc in f["clients"].items():
        log = proc.communicate(timeout=300)[0]
        seen[name] = json.loads((f["tmp"] / ("%s-soak.json" % name)).read_text())
        assert seen[name]["errors"] == [] and seen[name]["connections"] == 1, (name, seen[name]["errors"], log)
    return seen


def fleet_report(tmp):
    files = sorted(glob.glob(str(tmp / "reports" / "fleet-*.json")))
    assert files, "no fleet report"
    return json.loads(open(files[-1]).read())


def test_check_mode_prints_the_plan_and_changes_nothing(fleet):
    res = fleet_play(REPO / "playbooks" / "drain_host.yml", "--check", "-e", "stacklift_drain_host=node1",
                     tmp=fleet["tmp"])
    assert res.returncode == 0, res.stdout[-4000:]
    assert "shop: node1 -> node" in res.stdout and "sessions: node1 -> node" in res.stdout
    assert where(fleet["hosts"]) == {"shop": ["node1"], "shop2": ["node1"], "sessions": ["node1"]}
    assert not (fleet["tmp"] / "journal").exists() and not (fleet["tmp"] / "reports").exists()
    # What an AWX survey gives: the stacks chosen by a JMESPath query, the targets comma-separated.
    res = fleet_play(REPO / "playbooks" / "drain_host.yml", "--check", "-e", "stacklift_drain_host=node1",
                     "-e", json.dumps({"stacklift_fleet_select": "[?name=='sessions' || name=='shop2']",
                                       "stacklift_fleet_targets": "node3"}), tmp=fleet["tmp"])
    assert res.returncode == 0, res.stdout[-4000:]
    assert "sessions: node1 -> node3" in res.stdout and "shop2: node1 -> node3" in res.stdout
    assert "shop: node1 ->" not in res.stdout and "shop: fits nowhere" not in res.stdout
    # The same stacks as a plain list in a variable (group_vars, say) instead of the stacks inventory.
    listed = fleet["tmp"] / "stacks.yml"
    # (its values are templated where the list is read: no inventory_dir there, a path of its own)
    listed.write_text(yaml.safe_dump({"stacklift_stacks": yaml.safe_load(
        FLEET.read_text().replace("{{ inventory_dir }}", str(FLEET.parent)))["stacks"]}))
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-e", "@%s" % SECRETS, "-e", "@%s" % listed,
                          str(REPO / "playbooks" / "drain_host.yml"), "--check", "-e", "stacklift_drain_host=node1"],
                         env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-4000:]
    assert all("%s: node1 -> node" % name in res.stdout for name in STACKS), res.stdout[-4000:]


def test_drain_moves_every_stack_at_once_placed_by_capacity_and_spread_one_window_at_a_time(fleet, record_timing):
    t0 = time.time()
    # Archives kept (issue 20): the move back below finds this run's archives on node1 under the same names.
    res = fleet_play(REPO / "playbooks" / "drain_host.yml", "-e", "stacklift_drain_host=node1",
                     "-e", "stacklift_keep_archives=true", tmp=fleet["tmp"])
    total = time.time() - t0
    seen = clients_saw(fleet)
    assert res.returncode == 0, res.stdout[-6000:]
    now = where(fleet["hosts"])
    assert all(len(h) == 1 and h[0] in ("node2", "node3") for h in now.values()), now
    assert now["shop"] != now["shop2"]  # the spread group: no two shops on one host
    for name, address in SHOPS.items():
        res = in_client([sys.executable, str(SHOPPER), "verify", str(fleet["tmp"] / ("%s.json" % name))],
                        env={"SHOP_ADDRESS": address})
        assert res.returncode == 0, res.stdout + res.stderr
    assert seen["sessions"]["in_order"] and seen["sessions"]["requests"] > 20
    report = fleet_report(fleet["tmp"])
    assert report["ok"] and report["counts"]["migrated"] == 3
    by_stack = {s["stack"]: s for s in report["stacks"]}
    assert all(by_stack[n]["target"] == now[n][0] and by_stack[n]["downtime_s"] > 0 for n in STACKS)
    assert glob.glob(str(fleet["tmp"] / "reports" / "fleet-*.svg"))
    # The stacks ran at once: each began (lock, preflight, its target prepared) before the first
    # commit; and, by default, one window at a time on node1 (first fence to commit), the others waiting.
    windows = sorted(s["window"] for s in report["stacks"])
    assert all(later[0] >= earlier[1] for earlier, later in zip(windows, windows[1:])), windows
    # each gave its slot back on its target's word, the moment it served (not at the controller's note)
    assert all(by_stack[n]["window_slot"]["given_back_on"] == "targets" for n in STACKS), by_stack
    for name in STACKS:
        lines = [json.loads(line) for line in (fleet["tmp"] / "journal" / ("%s.journal" % name)).read_text().splitlines()]
        began = [r["t"] for r in lines if r["step"] == "begin"][-1]
        assert began < windows[0][1], (name, began, windows)
    record_timing("fleet_drain", {"total_s": round(total, 3), "downtimes_s": dict(
        (n, by_stack[n]["downtime_s"]) for n in STACKS), "slowest_requests_s": dict(
        (n, round(seen[n]["max_latency_s"], 3)) for n in STACKS)})

    # Writes made between the moves: new shoppers, a key in the sessions' Redis.
    kept = fleet["hosts"][0].out("ls %s/runs/*/shop-db.tar.zst %s/runs/*/sessions-cache.tar.zst" % ((ARCHIVE_DIR,) * 2))
    assert len(kept.split()) == 2, kept  # node1 holds the drain's archives under the stacks' container names
    res = in_client([sys.executable, str(SHOPPER), "drive", str(fleet["tmp"] / "between.json")],
                    env={"SHOP_ADDRESS": SHOPS["shop"]})
    assert res.returncode == 0, res.stdout + res.stderr
    sessions_host = next(h for h in fleet["hosts"] if h.name == now["sessions"][0])
    sessions_cli = "podman exec sessions-cache redis-cli --no-auth-warning --user shop --pass %s " % cache_password()
    assert sessions_host.out(sessions_cli + "SET fleet:between after-the-drain") == "OK"

    # After the maintenance: the same inventory moves stacks back, each from where it runs now (one
    # shop only: the spread group keeps the two shops apart).
    res = fleet_play(REPO / "playbooks" / "migrate_stacks.yml", "--limit", "stack_shop,stack_sessions",
                     "-e", '{"stacklift_fleet_targets": ["node1"]}', tmp=fleet["tmp"])
    assert res.returncode == 0, res.stdout[-6000:]
    assert where(fleet["hosts"]) == {"shop": ["node1"], "shop2": now["shop2"], "sessions": ["node1"]}
    # every write made between the moves is there (the same shoppers: their orders from both drives)
    res = in_client([sys.executable, str(SHOPPER), "verify", str(fleet["tmp"] / "between.json")],
                    env={"SHOP_ADDRESS": SHOPS["shop"]})
    assert res.returncode == 0, res.stdout + res.stderr
    assert fleet["hosts"][0].out(sessions_cli + "GET fleet:between") == "after-the-drain"
    # The kept archives were set aside and named in the journal, never restored.
    steps = [json.loads(line) for line in fleet["hosts"][0].out("cat %s/sessions.journal" % ARCHIVE_DIR).splitlines()]
    assert any(r["step"] == "other_archives" for r in steps), steps[-10:]


def test_one_stack_that_never_gets_ready_rolls_back_and_the_others_move(fleet):
    for h in fleet["hosts"][1:]:
        block_shop_port(h, "10.89.11.4")   # shop2's app never answers on either target
    try:
        # One window at a time: the stacks prepare together, then freeze one after the other, and the one
        # that rolls back gives its window up to the others.
        res = fleet_play(REPO / "playbooks" / "drain_host.yml", "-e", "stacklift_drain_host=node1",
                         "-e", "stacklift_probe_timeout=6", "-e", "stacklift_fleet_windows=1", tmp=fleet["tmp"])
    finally:
        for h in fleet["hosts"][1:]:
            h.run("nft delete table inet stacklift_test", check=False)
    clients_saw(fleet)
    assert res.returncode != 0 and "shop2 did not move" in res.stdout, res.stdout[-4000:]
    now = where(fleet["hosts"])
    assert now["shop2"] == ["node1"] and now["shop"] != ["node1"] and now["sessions"] != ["node1"], now
    report = fleet_report(fleet["tmp"])
    by_stack = {s["stack"]: s for s in report["stacks"]}
    assert by_stack["shop2"]["outcome"] == "rolled_back" and "failed its http probe" in by_stack["shop2"]["error"]
    assert by_stack["shop"]["outcome"] == "migrated" and by_stack["sessions"]["outcome"] == "migrated"
    # One stack at a time in its window on node1: from its first fence to its commit (a rollback gives
    # the window up as it begins), the others waiting, prepared.
    freezes = sorted(s["freeze"] for s in report["stacks"])
    assert all(later[0] >= earlier[1] for earlier, later in zip(freezes, freezes[1:])), freezes
    windows = sorted(s["window"] for s in report["stacks"] if s["outcome"] == "migrated")
    assert all(later[0] >= earlier[1] for earlier, later in zip(windows, windows[1:])), windows


def test_a_stack_too_big_for_any_target_stays_and_says_why(fleet):
    measured = json.loads(subprocess.run(
        [str(BIN / "ansible"), "-i", str(INVENTORY), "node1", "-m", "stacklift.migrate.host_capacity",
         "-a", json.dumps({"containers": list(STACKS["shop"] + STACKS["sessions"])})],
        env=ansible_env(), capture_output=True, text=True, timeout=120, check=True).stdout.split("=>", 1)[1])
    need = {name: sum(measured["containers"][c]["memory_bytes"] for c in STACKS[name])
            for name in ("shop", "sessions")}
    assert need["shop"] > 2 * need["sessions"], need
    # Each target gives stacks half way between what the sessions Redis and a shop take: one fits, one not.
    budget = (need["shop"] + need["sessions"]) // 2
    res = fleet_play(REPO / "playbooks" / "migrate_stacks.yml", "--limit", "stack_shop,stack_sessions",
                     "-e", '{"stacklift_fleet_memory_budget": {"node2": %d, "node3": %d}}' % (budget, budget),
                     tmp=fleet["tmp"])
    clients_saw(fleet)
    assert res.returncode != 0 and "shop did not move" in res.stdout, res.stdout[-4000:]
    assert "shop fits on no target" in res.stdout and "of free memory, the stack needs" in res.stdout
    now = where(fleet["hosts"])
    assert now["shop"] == ["node1"] and now["shop2"] == ["node1"] and now["sessions"] != ["node1"], now
    by_stack = {s["stack"]: s for s in fleet_report(fleet["tmp"])["stacks"]}
    assert by_stack["shop"]["outcome"] == "unplaced" and set(by_stack) == {"shop", "sessions"}


def test_one_drain_moves_a_podman_stack_and_a_docker_stack_each_with_its_engine(node1, node2, node3, tmp_path,
                                                                                background):
    """A fleet mixing engines: the sessions Redis runs in Docker (stacklift_engine: docker among its
    stack's vars), the shop in Podman; one drain places and moves both, each through its own engine."""
    hosts = (node1, node2, node3)
    stacks = yaml.safe_load(FLEET.read_text().replace("{{ inventory_dir }}", str(FLEET.parent)))["stacks"]
    stacks = [s for s in stacks if s["name"] in ("shop", "sessions")]
    for s in stacks:
        s["vars"] = dict(s["vars"], **({"stacklift_engine": "docker"} if s["name"] == "sessions" else {}))
    mixed = tmp_path / "mixed.stacks.yml"
    mixed.write_text(yaml.safe_dump({"plugin": "stacklift.migrate.stacks", "stacks": stacks}))

    def play(path, *extra):
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(mixed),
                               "-e", "@%s" % SECRETS, str(path)] + list(extra),
                              env=ansible_env(), capture_output=True, text=True, timeout=900, check=False)
    assert fleet_play(REPO / "examples" / "shop" / "reset.yml").returncode == 0
    try:
        res = play(REPO / "examples" / "shop" / "deploy.yml",
                   "-e", '{"stacklift_stack": "{{ hostvars.stack_shop.stacklift_stack_description }}"}',
                   "-e", '{"shop_addresses": {"db": "10.89.10.2", "cache": "10.89.10.3", "app": "10.89.10.4"}}')
        assert res.returncode == 0, res.stdout[-3000:]
        res = play(REPO / "examples" / "fleet" / "sessions.yml")
        assert res.returncode == 0, res.stdout[-3000:]
        assert node1.out("docker ps --format '{{.Names}}'").split() == ["sessions-cache"]
        stop = tmp_path / "stop"
        counter = in_client([sys.executable, str(REPO / "examples" / "fleet" / "counter.py"), "10.89.12.3",
                             str(tmp_path / "sessions-soak.json"), "--stop", str(stop)],
                            env={"REDIS_PASSWORD": cache_password()}, background=True)
        background.append(counter)
        time.sleep(1)
        res = play(REPO / "playbooks" / "drain_host.yml", "-e", "stacklift_drain_host=node1",
                   "-e", "stacklift_report_dir=%s" % (tmp_path / "reports"),
                   "-e", "stacklift_journal_dir=%s" % (tmp_path / "journal"))
        time.sleep(1)
        stop.write_text("")
        log = counter.communicate(timeout=300)[0]
        assert res.returncode == 0, res.stdout[-6000:]
        seen = json.loads((tmp_path / "sessions-soak.json").read_text())
        assert seen["errors"] == [] and seen["connections"] == 1 and seen["in_order"], (seen, log)
        now = where(hosts)
        assert now["shop"] in (["node2"], ["node3"]), now
        docker_on = [h.name for h in hosts if "sessions-cache" in h.out("docker ps --format '{{.Names}}'").split()]
        assert docker_on in (["node2"], ["node3"]) and now["sessions"] == [], (docker_on, now)
        report = fleet_report(tmp_path)
        assert report["ok"] and report["counts"]["migrated"] == 2, report
    finally:
        fleet_play(REPO / "examples" / "shop" / "reset.yml")
