"""Fleet benchmark on a three-host lab: node1 drained of three stacks at once (two shops, a Redis), against
each stack moved alone, in the same run.

  make bench-fleet     (LAB_NODES=3)

Targets (issue 9): the drain's total time at most 1.5x one stack's alone, and each stack's downtime at
most 1.5x its downtime alone. The drain runs three times a round: one window at a time on node1 (the
default, stacklift_fleet_windows=1: the stacks prepare together, then each is fenced to committed in
turn), two, and no limit (every window at once). Each stack alone runs with the default.
Results go to bench-results/bench-fleet-TIMESTAMP.json and are printed.
"""

import glob
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lab"))

from labhosts import BIN, INVENTORY, ansible_env  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
FLEET = REPO / "examples" / "fleet" / "fleet.stacks.yml"
SECRETS = REPO / "examples" / "shop" / "group_vars" / "all" / "secrets.yml"
NETS = {"shop": 10, "shop2": 11}


def play(path, *extra):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(FLEET), "-e", "@%s" % SECRETS, str(path)]
    res = subprocess.run(cmd + list(extra), env=ansible_env(), capture_output=True, text=True, check=False)
    return res


def deploy(stacks):
    assert play(REPO / "examples" / "shop" / "reset.yml").returncode == 0
    for name in stacks:
        if name in NETS:
            n = NETS[name]
            res = play(REPO / "examples" / "shop" / "deploy.yml",
                       "-e", '{"stacklift_stack": "{{ hostvars.stack_%s.stacklift_stack_description }}"}' % name,
                       "-e", '{"shop_addresses": {"db": "10.89.%d.2", "cache": "10.89.%d.3", "app": "10.89.%d.4"}}'
                       % (n, n, n))
        else:
            res = play(REPO / "examples" / "fleet" / "sessions.yml")
        if res.returncode:
            raise RuntimeError(res.stdout[-3000:])


WINDOWS = (1, 2, 0)  # stacklift_fleet_windows of the drains: one at a time (the default), two, no limit


def run(stacks, report_dir, windows=None):
    """Move STACKS off node1 (all of them: drain_host; one: migrate_stacks --limit); (seconds, fleet report)."""
    deploy(stacks)
    extra = ["-e", "stacklift_report_dir=%s" % report_dir, "-e", "stacklift_journal_dir=%s/journal" % report_dir]
    if windows is not None:
        extra += ["-e", "stacklift_fleet_windows=%d" % windows]
    t0 = time.time()
    if len(stacks) > 1:
        res = play(REPO / "playbooks" / "drain_host.yml", "-e", "stacklift_drain_host=node1", *extra)
    else:
        res = play(REPO / "playbooks" / "migrate_stacks.yml", "--limit", "stack_" + stacks[0], *extra)
    seconds = time.time() - t0
    if res.returncode:
        raise RuntimeError(res.stdout[-4000:])
    report = json.loads(open(sorted(glob.glob("%s/fleet-*.json" % report_dir))[-1]).read())
    return seconds, report


def median(xs):
    return round(statistics.median(xs), 3)


def main():
    stacks = ["shop", "shop2", "sessions"]
    solo = dict((s, {"total_s": [], "downtime_s": []}) for s in stacks)
    drained = dict((w, {"total_s": [], "downtime_s": dict((s, []) for s in stacks)}) for w in WINDOWS)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for r in range(ROUNDS):
        for s in stacks:
            seconds, report = run([s], "/tmp/stacklift-bench-fleet/%s-%d-%s" % (stamp, r, s))
            solo[s]["total_s"].append(seconds)
            solo[s]["downtime_s"].append(report["stacks"][0]["downtime_s"])
        for w in WINDOWS:
            seconds, report = run(stacks, "/tmp/stacklift-bench-fleet/%s-%d-all-%d" % (stamp, r, w), windows=w)
            drained[w]["total_s"].append(seconds)
            for row in report["stacks"]:
                drained[w]["downtime_s"][row["stack"]].append(row["downtime_s"])
    play(REPO / "examples" / "shop" / "reset.yml")
    slowest_solo = max(median(solo[s]["total_s"]) for s in stacks)
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": ROUNDS, "solo": solo,
           "solo_total_median_s": dict((s, median(solo[s]["total_s"])) for s in stacks), "drains": {}}
    for w in WINDOWS:
        d = drained[w]
        out["drains"]["windows=%d" % w] = {
            "runs": d, "total_median_s": median(d["total_s"]),
            "total_vs_slowest_solo": round(median(d["total_s"]) / slowest_solo, 2),
            "downtime_vs_solo": dict((s, round(median(d["downtime_s"][s]) / median(solo[s]["downtime_s"]), 2))
                                     for s in stacks)}
    path = REPO / "bench-results" / ("bench-fleet-%s.json" % stamp)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    for w in WINDOWS:
        d, o = drained[w], out["drains"]["windows=%d" % w]
        print("three stacks drained at once, %s: %.1f s (median of %d); the slowest stack alone %.1f s: %.2fx "
              "(target <= 1.5)" % ("every window at once" if not w else "%d window%s at a time" % (w, "s" * (w > 1)),
                                   o["total_median_s"], ROUNDS, slowest_solo, o["total_vs_slowest_solo"]))
        for s in stacks:
            print("  %-9s downtime drained with the others %.3f s, alone %.3f s: %.2fx (target <= 1.5)"
                  % (s, median(d["downtime_s"][s]), median(solo[s]["downtime_s"]), o["downtime_vs_solo"][s]))
    print("written to %s" % path)


if __name__ == "__main__":
    main()
