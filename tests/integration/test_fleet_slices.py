"""A drain in slices, as the sliced drain workflow of examples/awx/controller.yml runs it: two jobs at once
through ansible-runner (as AWX runs each node), each limited to one slice of the stacks (the groups
stacks_slice_K_of_2 the stacks inventory makes), then the workflow's merge of their artifacts into one
fleet report. Four Redis stacks on node1 go to node2 and node3; every stack moves once, with its keys, and
node1 never has more stacks in their window than its window slots allow, across the slices. The same
drain in one job, in the same run, for the comparison."""

import json
import time

import ansible_runner
import pytest
import yaml

from labhosts import INVENTORY, REPO, ansible_env

STACKS = ["slice%d" % i for i in range(1, 5)]
SUBNET = "10.89.%d.0/24"


def stacks_file(tmp):
    path = tmp / "drain.stacks.yml"
    path.write_text(yaml.safe_dump({"plugin": "stacklift.migrate.stacks", "slices": 2, "stacks": [
        {"name": name, "source": "node1", "networks": [{"name": name + "net", "subnet": SUBNET % (20 + i)}],
         "services": [{"name": "cache", "container": name, "probe": {"type": "redis"}, "tcp": "established"}]}
        for i, name in enumerate(STACKS)]}))
    return path


def remove(hosts):
    for h in hosts:
        h.run("podman rm -f -t 0 %s >/dev/null 2>&1; podman network rm %s >/dev/null 2>&1; true"
              % (" ".join(STACKS), " ".join(n + "net" for n in STACKS)))


def deploy(node1, nodes):
    """The four stacks on node1, each Redis holding a key of its own with a TTL."""
    remove(nodes)
    for i, name in enumerate(STACKS):
        subnet = SUBNET % (20 + i)
        node1.run("podman network create --subnet %s %snet >/dev/null && podman run -d --name %s --network %snet "
                  "--ip %s localhost/stacklift/redis >/dev/null" % (subnet, name, name, name, subnet.replace(".0/24", ".3")))
    for name in STACKS:
        node1.run("until podman exec %s redis-cli ping >/dev/null 2>&1; do sleep 0.1; done; "
                  "podman exec %s redis-cli SET owner %s EX 3600 >/dev/null" % (name, name, name), timeout=60)


def job(tmp, ident, playbook, limit=None, extravars=None):
    """A job as AWX runs it (ansible-runner, a private data directory of its own); returns (runner, thread)."""
    (tmp / ident).mkdir()
    thread, runner = ansible_runner.run_async(
        private_data_dir=str(tmp / ident), project_dir=str(REPO), playbook=str(REPO / "playbooks" / playbook),
        inventory=[str(INVENTORY), str(tmp / "drain.stacks.yml")], limit=limit, ident=ident, quiet=True,
        extravars=dict({"stacklift_drain_host": "node1", "stacklift_fleet_windows": 1,
                        "stacklift_report_dir": str(tmp / "reports"), "stacklift_journal_dir": str(tmp / "journal")},
                       **(extravars or {})),
        envvars={k: v for k, v in ansible_env().items() if k in ("ANSIBLE_CONFIG", "PATH")})
    return runner, thread


def artifacts(runner):
    """What the job hands AWX (set_stats): AWX keeps it as the job's artifacts."""
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    return stats[-1]["event_data"].get("artifact_data") or {}


def where(nodes):
    return {name: [h.name for h in nodes if name in h.out("podman ps --format '{{.Names}}'").split()] for name in STACKS}


def check_moved(nodes):
    now = where(nodes)
    assert all(len(h) == 1 and h[0] in ("node2", "node3") for h in now.values()), now
    for name in STACKS:
        host = next(h for h in nodes if h.name == now[name][0])
        assert host.out("podman exec %s redis-cli GET owner" % name) == name
        assert 3000 < int(host.out("podman exec %s redis-cli TTL owner" % name)) <= 3600
    return now


def most_in_window_at_once(rows):
    """The most stacks in their window (first fence to commit) at one moment."""
    edges = sorted([(r["window"][0], 1) for r in rows] + [(r["window"][1], -1) for r in rows])
    most = cur = 0
    for _moment, step in edges:
        cur += step
        most = max(most, cur)
    return most


@pytest.fixture
def fleet(node1, node2, node3, tmp_path):
    nodes = (node1, node2, node3)
    stacks_file(tmp_path)
    deploy(node1, nodes)
    yield {"nodes": nodes, "tmp": tmp_path}
    remove(nodes)


def test_a_drain_in_two_slices_at_once_moves_every_stack_once_within_the_hosts_windows(fleet, record_timing):
    tmp, nodes = fleet["tmp"], fleet["nodes"]
    t0 = time.time()
    jobs = [job(tmp, "slice%d" % k, "drain_host.yml", limit="stacks_slice_%d_of_2" % k) for k in (1, 2)]
    for _runner, thread in jobs:
        thread.join(timeout=1200)
    sliced_s = time.time() - t0
    for runner, _thread in jobs:
        assert runner.status == "successful", runner.stdout.read()[-6000:]
    check_moved(nodes)

    # each slice's artifacts carry its own stacks, under a name of its own
    parts = {}
    for k, (runner, _thread) in enumerate(jobs, 1):
        data = artifacts(runner)
        part = data["stacklift_fleet_part_stacks_slice_%d_of_2" % k]
        assert sorted(s["stack"] for s in part["stacks"]) == STACKS[k - 1::2], part
        assert all(s["outcome"] == "migrated" for s in part["stacks"]), part
        parts.update(data)   # as AWX merges a node's parents' artifacts into its extra vars
    del parts["stacklift_fleet"]
    runner, thread = job(tmp, "summary", "fleet_summary.yml", extravars=parts)
    thread.join(timeout=300)
    assert runner.status == "successful", runner.stdout.read()[-4000:]
    fleet_report = artifacts(runner)["stacklift_fleet"]
    assert fleet_report["ok"] and fleet_report["counts"]["migrated"] == 4
    rows = fleet_report["stacks"]
    assert sorted(r["stack"] for r in rows) == STACKS   # every stack once
    # node1's one window slot held across both slices: never two stacks frozen at once there
    assert most_in_window_at_once(rows) == 1, [r["window"] for r in rows]
    # a stack waited for another's window (of its own slice or of the other)
    assert any((r.get("window_slot") or {}).get("waited_s", 0) > 0 for r in rows), rows
    for name in STACKS:   # one run each, committed
        runs = [json.loads(line) for line in (tmp / "journal" / ("%s.journal" % name)).read_text().splitlines()]
        assert [r["step"] for r in runs if r["step"] in ("begin", "committed") and "service" not in r] == ["begin", "committed"], name

    # the same drain in one job, for the comparison
    deploy(nodes[0], nodes)
    t0 = time.time()
    runner, thread = job(tmp, "whole", "drain_host.yml")
    thread.join(timeout=1200)
    whole_s = time.time() - t0
    assert runner.status == "successful", runner.stdout.read()[-6000:]
    check_moved(nodes)
    record_timing("fleet_drain_sliced", {"stacks": 4, "slices": 2, "windows": 1, "sliced_total_s": round(sliced_s, 1),
                                         "one_job_total_s": round(whole_s, 1)})
