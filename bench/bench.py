"""stacklift benchmarks on the lab, each against the bare commands doing the same work, in the same run.

  make bench            (the lab must be up; make bench starts it)

Part 1, per module: the module run as an Ansible task (ansible-playbook wall time, and the time the
module itself reports where it does) against the bare podman/ssh command run over SSH from the
controller. Part 2: the demo stack's downtime migrated with stacklift against the same migration
done by hand with bare commands (fence, checkpoints, copy, restores). Results go to
bench-results/bench-TIMESTAMP.json and are printed as a table.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from labhosts import BIN, INVENTORY, ansible_env, load_lab, run_module  # noqa: E402
from ansible_collections.stacklift.migrate.plugins.module_utils._window.fences import FENCE_RULES  # noqa: E402

ROUNDS = 3
REDIS = "localhost/stacklift/redis:latest"
NET, SUBNET, IP = "benchnet", "10.89.20.0/24", "10.89.20.5"
SHOP = REPO / "examples" / "shop"
SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def timed(fn):
    t = time.time()
    out = fn()
    return time.time() - t, out


def seconds(fn):
    return timed(fn)[0]


def median(xs):
    return round(statistics.median(xs), 3) if xs else None


def module_time(host, module, args):
    wall, (result, failed) = timed(lambda: run_module(host, module, args))
    if failed:
        raise RuntimeError("%s failed: %s" % (module, result.get("msg")))
    return wall, result


def fresh_cache(node):
    node.run("podman rm -f -t 0 benchcache >/dev/null 2>&1; podman run -d --name benchcache --network %s --ip %s %s "
             ">/dev/null && until podman exec benchcache redis-cli ping >/dev/null 2>&1; do sleep 0.1; done; "
             "podman exec benchcache sh -c 'seq 1 20000 | sed \"s/.*/SET key& value&/\" | redis-cli --pipe' >/dev/null" % (NET, IP, REDIS))


def bench_modules(node1, node2):
    for h in (node1, node2):
        h.run("podman rm -f -t 0 benchcache >/dev/null 2>&1; podman network rm -f %s >/dev/null 2>&1; "
              "podman network create --subnet %s %s >/dev/null; rm -rf /var/lib/stacklift/bench "
              "/var/lib/stacklift/restored; mkdir -p /var/lib/stacklift/bench" % (NET, SUBNET, NET))
    a = "/var/lib/stacklift/bench/benchcache.tar.zst"
    rows = {k: {"module_task_s": [], "module_own_s": [], "bare_s": []} for k in (
        "container_checkpoint", "checkpoint_info", "checkpoint_transfer", "image_sync", "container_restore",
        "service_probe")}
    for _round in range(ROUNDS):
        # checkpoint: bare, then the module, each on a fresh container with the same data
        fresh_cache(node1)
        t = seconds(lambda: node1.run("podman container checkpoint benchcache --export /tmp/bare.tar.zst "
                                      "--compress zstd --tcp-established --file-locks"))
        rows["container_checkpoint"]["bare_s"].append(t)
        fresh_cache(node1)
        node1.run("rm -f %s*" % a)
        t, r = module_time("node1", "container_checkpoint", {"name": "benchcache", "archive": a,
                                                             "tcp_established": True, "file_locks": True})
        rows["container_checkpoint"]["module_task_s"].append(t)
        rows["container_checkpoint"]["module_own_s"].append(r["checkpoints"][0]["seconds"])
        # info: bare reads the container's config out of the archive
        t = seconds(lambda: node1.run("tar --zstd -xOf %s config.dump >/dev/null" % a))
        rows["checkpoint_info"]["bare_s"].append(t)
        t, r = module_time("node1", "checkpoint_info", {"path": a})
        rows["checkpoint_info"]["module_task_s"].append(t)
        # transfer: scp against the module (sha256 on both ends, rename into place)
        node2.run("rm -rf /var/lib/stacklift/bench; mkdir -p /var/lib/stacklift/bench")
        t = seconds(lambda: node1.run("scp -q %s %s %s:/var/lib/stacklift/bench/bare.tar.zst" % (SSH_OPTS, a, node2.address)))
        rows["checkpoint_transfer"]["bare_s"].append(t)
        t, r = module_time("node1", "checkpoint_transfer", {"src": a, "target_host": node2.address,
                                                            "key_file": "/root/.ssh/id_ed25519"})
        rows["checkpoint_transfer"]["module_task_s"].append(t)
        rows["checkpoint_transfer"]["module_own_s"].append(r["seconds"])
        # image: save | ssh load against the module
        node2.run("podman rm -f -t 0 benchcache >/dev/null 2>&1; podman rmi -f %s >/dev/null" % REDIS)
        t = seconds(lambda: node1.run("podman save --format docker-archive %s | ssh %s %s podman load -q >/dev/null"
                                      % (REDIS, SSH_OPTS, node2.address)))
        rows["image_sync"]["bare_s"].append(t)
        node2.run("podman rmi -f %s >/dev/null" % REDIS)
        t, r = module_time("node1", "image_sync", {"archive": a, "target_host": node2.address,
                                                   "key_file": "/root/.ssh/id_ed25519"})
        rows["image_sync"]["module_task_s"].append(t)
        rows["image_sync"]["module_own_s"].append(r["seconds"])
        # restore on node2: bare, then the module
        node2.run("podman rm -f -t 0 benchcache >/dev/null 2>&1; podman volume prune -f >/dev/null")
        t = seconds(lambda: node2.run("podman container restore --import %s --tcp-established --file-locks" % a))
        rows["container_restore"]["bare_s"].append(t)
        node2.run("podman rm -f -t 0 benchcache >/dev/null; rm -rf /var/lib/stacklift/restored")
        t, r = module_time("node2", "container_restore", {"archive": a, "tcp_established": True, "file_locks": True})
        rows["container_restore"]["module_task_s"].append(t)
        rows["container_restore"]["module_own_s"].append(r["seconds"])
        # probe: redis-cli ping in the container against the module's RESP PING
        t = seconds(lambda: node2.run("podman exec benchcache redis-cli ping"))
        rows["service_probe"]["bare_s"].append(t)
        t, r = module_time("node2", "service_probe", {"container": "benchcache", "probe": {"type": "redis"}})
        rows["service_probe"]["module_task_s"].append(t)
        rows["service_probe"]["module_own_s"].append(r["elapsed"])
    for h in (node1, node2):
        h.run("podman rm -f -t 0 benchcache >/dev/null 2>&1; podman network rm -f %s >/dev/null 2>&1; "
              "rm -rf /var/lib/stacklift/bench /var/lib/stacklift/restored /tmp/bare.tar.zst" % NET, check=False)
    return summarize(rows)


def summarize(rows):
    """Medians of each module's timings, and their ratios to the bare commands'."""
    out = {}
    for name, r in rows.items():
        bare, task, own = median(r["bare_s"]), median(r["module_task_s"]), median(r["module_own_s"])
        out[name] = {"bare_s": bare, "module_task_s": task, "module_own_s": own,
                     "task_vs_bare": round(task / bare, 2) if bare else None,
                     "own_vs_bare": round(own / bare, 2) if bare and own is not None else None}
    return out


def play(*args):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(SHOP / "inventory.yml")] + list(args)
    res = subprocess.run(cmd, env=ansible_env(), capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError("%s failed:\n%s" % (" ".join(args), res.stdout[-3000:]))
    return res.stdout


def deploy_shop(engine="podman"):
    play(str(SHOP / "reset.yml"))
    play(str(SHOP / "deploy.yml"), "-e", "stacklift_engine=%s" % engine)
    drive = subprocess.run(["ip", "netns", "exec", "stacklift-client", sys.executable, str(SHOP / "shopper.py"),
                            "drive", "/tmp/stacklift-bench-shoppers.json"], capture_output=True, text=True, check=False)
    if drive.returncode:
        raise RuntimeError(drive.stdout + drive.stderr)


def by_hand(node1, node2):
    """The same migration with bare commands: fence, checkpoints, copy, restores; each step timed."""
    deploy_shop()
    steps = {}
    d = "/var/lib/stacklift/byhand"
    node1.run("mkdir -p %s" % d)
    node2.run("rm -rf %s; mkdir -p %s" % (d, d))
    t0 = time.time()
    # The same nftables table stacklift's container_fence puts in each container's namespace.
    node1.run("cat > /tmp/fence.nft <<'EOF'\n%sEOF" % FENCE_RULES)
    steps["fence_s"] = seconds(lambda: node1.run(
        "for c in shop-app shop-cache shop-db; do nsenter -t $(podman inspect -f '{{.State.Pid}}' $c) "
        "-n nft -f /tmp/fence.nft; done"))
    steps["checkpoint_s"] = seconds(lambda: node1.run(
        "for c in shop-db shop-cache shop-app; do podman container checkpoint $c --export %s/$c.tar.zst "
        "--compress zstd --tcp-established --file-locks || exit 1; done" % d))
    # What container_checkpoint adds to Podman's export: the changed files its rootfs diff leaves out
    # (see archive.py), done here with tar, or the database's restore fails.
    steps["rootfs_completion_s"] = seconds(lambda: node1.run(
        "for c in shop-db shop-cache shop-app; do x=%s/$c.x; rm -rf $x; mkdir $x && tar -C $x --zstd -xf %s/$c.tar.zst "
        "&& m=$(podman mount $c) && podman diff --format json $c | python3 -c 'import json,sys; d=json.load(sys.stdin); "
        "print(chr(10).join(p[1:] for p in d[\"changed\"] + (d.get(\"added\") or [])))' "
        "| grep -vE '^etc/(hosts|hostname|resolv.conf)$|^run/.containerenv$' "
        "| (cd $m && while read p; do if [ -f \"$p\" ] || [ -L \"$p\" ]; then echo \"$p\"; fi; done) > $x.list "
        "&& tar -C $m -rf $x/rootfs-diff.tar -T $x.list && podman unmount $c >/dev/null "
        "&& tar -C $x --zstd -cf %s/$c.tar.zst . && rm -rf $x $x.list || exit 1; done" % (d, d, d)))
    steps["copy_s"] = seconds(lambda: node1.run("scp -q %s %s/*.tar.zst %s:%s/" % (SSH_OPTS, d, node2.address, d)))
    node2.run("podman network exists shopnet || podman network create --subnet 10.89.10.0/24 shopnet >/dev/null")
    t, res = timed(lambda: node2.run(
        "for c in shop-db shop-cache shop-app; do podman container restore --import %s/$c.tar.zst "
        "--tcp-established --file-locks || exit 1; done" % d, check=False))
    steps["restore_s"] = t
    result = {"steps": {k: round(v, 3) for k, v in steps.items()}}
    if res.returncode != 0:
        log = node2.out("grep -h Error /var/lib/containers/storage/overlay-containers/*/userdata/restore.log "
                        "2>/dev/null | head -3", check=False)
        result.update(ok=False, error=(res.stderr.strip().splitlines() or ["?"])[-1], criu=log)
    else:
        node2.run("until podman exec shop-app curl -sf http://127.0.0.1:8080/health >/dev/null; do sleep 0.05; done")
        result.update(ok=True, downtime_s=round(time.time() - t0, 3))
    result["work_s"] = round(sum(steps.values()), 3)
    for h in (node1, node2):
        h.run("rm -rf %s" % d, check=False)
    return result


def with_stacklift(encrypt=False, engine="podman", memory="eager"):
    deploy_shop(engine)
    soak = subprocess.Popen(["ip", "netns", "exec", "stacklift-client", sys.executable, str(SHOP / "shopper.py"),
                             "soak", "/tmp/stacklift-bench-soak.json", "--stop", "/tmp/stacklift-bench-stop"])
    time.sleep(1)
    try:
        out = play(str(REPO / "migrate_stack.yml"), "-e", "stacklift_report_dir=/tmp/stacklift-bench-reports",
                   "-e", "stacklift_journal_dir=/tmp/stacklift-bench-journal", "-e", "stacklift_engine=%s" % engine,
                   "-e", "stacklift_memory=%s" % memory,
                   *(["-e", "stacklift_encryption_key={{ shop_archive_key }}"] if encrypt else []))
    finally:
        time.sleep(1)
        Path("/tmp/stacklift-bench-stop").write_text("")
        soak.wait(timeout=300)
        Path("/tmp/stacklift-bench-stop").unlink()
    client = json.loads(Path("/tmp/stacklift-bench-soak.json").read_text())
    path = [line.split("report: ", 1)[1].strip().strip('",') for line in out.splitlines() if "report: " in line][-1]
    report = json.loads(Path(path).read_text())
    phases = {}
    for name, s in report["services"].items():
        for ph, v in s["phases"].items():
            if v.get("seconds") is not None:
                phases[ph] = round(phases.get(ph, 0) + v["seconds"], 3)
    return {"downtime_s": report["downtime_s"], "phase_seconds_summed": phases,
            "client_slowest_request_s": round(client["max_latency_s"], 3), "client_errors": len(client["errors"])}


BIG_STACK = {"stacklift_stack": {
    "name": "big", "source": "node1", "target": "node2",
    "networks": [{"name": "bignet", "subnet": "10.89.30.0/24"}],
    "services": [{"name": "big", "container": "big", "probe": {"type": "redis"}, "tcp": "established"}]},
    "stacklift_traffic_switch_tasks": ""}


def start_big(node1, node2, gib, engine="podman", name="big", prefix="10.89.30", options=""):
    """A Redis holding GIB GiB on node1 (ENGINE's container NAME on network NAMEnet, PREFIX.0/24); its used memory."""
    rm = "podman rm -f -t 0" if engine == "podman" else "docker rm -f"
    for h in (node1, node2):
        h.run("{rm} {n} >/dev/null 2>&1; {e} network rm -f {n}net >/dev/null 2>&1; "
              "rm -rf /var/lib/stacklift/checkpoints/{n}* /tmp/{n}.tar.zst".format(rm=rm, e=engine, n=name), check=False)
    node1.run("{e} network create --subnet {p}.0/24 {n}net >/dev/null && {e} run -d --name {n} "
              "--network {n}net --ip {p}.5 {o} --entrypoint /usr/bin/redis-server {r} --bind 0.0.0.0 "
              "--protected-mode no --save '' --appendonly no --enable-debug-command yes >/dev/null && "
              "until {e} exec {n} redis-cli ping >/dev/null 2>&1; do sleep 0.1; done && "
              "{e} exec {n} redis-cli DEBUG POPULATE {k} key 1024 >/dev/null".format(
                  e=engine, n=name, p=prefix, o=options, r=REDIS, k=int(gib * (1 << 20))))
    return int(node1.out("%s exec %s redis-cli info memory | sed -n 's/^used_memory:\\([0-9]*\\).*/\\1/p'"
                         % (engine, name)))


def big_redis_by_hand(node1, node2, gib=1.0):
    """The same move with the bare commands: checkpoint --export, scp, restore --import, one after another."""
    start_big(node1, node2, gib)
    node2.run("podman network create --subnet 10.89.30.0/24 bignet >/dev/null")
    steps = {}
    t0 = time.time()
    steps["checkpoint_s"] = seconds(lambda: node1.run(
        "podman container checkpoint big --export /tmp/big.tar.zst --compress zstd --tcp-established"))
    steps["copy_s"] = seconds(lambda: node1.run("scp -q %s /tmp/big.tar.zst %s:/tmp/" % (SSH_OPTS, node2.address)))
    steps["restore_s"] = seconds(lambda: node2.run("podman container restore --import /tmp/big.tar.zst --tcp-established"))
    node2.run("until podman exec big redis-cli ping >/dev/null 2>&1; do sleep 0.05; done")
    downtime = round(time.time() - t0, 3)
    keys = int(node2.out("podman exec big redis-cli dbsize"))
    for h in (node1, node2):
        h.run("podman rm -f -t 0 big >/dev/null 2>&1; podman network rm -f bignet >/dev/null 2>&1; rm -f /tmp/big.tar.zst",
              check=False)
    return {"downtime_s": downtime, "keys_after": keys, "steps": dict((k, round(v, 3)) for k, v in steps.items())}


def big_redis(node1, node2, gib=1.0, encrypt=False):
    """A Redis holding GIB GiB of data, migrated alone with stacklift: its downtime and archive."""
    used = start_big(node1, node2, gib)
    extra = Path("/tmp/stacklift-bench-big.json")
    extra.write_text(json.dumps(dict(BIG_STACK, stacklift_encryption_key="bench passphrase") if encrypt else BIG_STACK))
    out = play(str(REPO / "migrate_stack.yml"), "-e", "@%s" % extra, "-e", "stacklift_report_dir=/tmp/stacklift-bench-reports",
               "-e", "stacklift_journal_dir=/tmp/stacklift-bench-journal")
    path = [line.split("report: ", 1)[1].strip().strip('",') for line in out.splitlines() if "report: " in line][-1]
    report = json.loads(Path(path).read_text())
    keys = int(node2.out("podman exec big redis-cli dbsize"))
    for h in (node1, node2):
        h.run("podman rm -f -t 0 big >/dev/null 2>&1; podman network rm -f bignet >/dev/null 2>&1", check=False)
    svc = report["services"]["big"]
    return {"used_memory_bytes": used, "keys_after": keys, "downtime_s": report["downtime_s"], "encrypted": encrypt,
            "archive_bytes": svc.get("archive_bytes"),
            "phases_s": dict((k, v["seconds"]) for k, v in svc["phases"].items())}


def migrations(node1, node2):
    """By hand and with stacklift, alternately, ROUNDS times each; medians and the ratio."""
    hand, tool, encrypted = [], [], []
    for _round in range(ROUNDS):
        hand.append(by_hand(node1, node2))
        tool.append(with_stacklift())
        encrypted.append(with_stacklift(encrypt=True))
    ok = [h["downtime_s"] for h in hand if h.get("ok")]
    out = {"by_hand_sequential": hand, "stacklift": tool,
           "by_hand_downtime_median_s": median(ok), "stacklift_downtime_median_s": median([t["downtime_s"] for t in tool]),
           "client_slowest_request_median_s": median([t["client_slowest_request_s"] for t in tool])}
    if ok:
        out["stacklift_vs_by_hand"] = round(out["stacklift_downtime_median_s"] / out["by_hand_downtime_median_s"], 2)
    out["stacklift_encrypted"] = encrypted
    out["stacklift_encrypted_downtime_median_s"] = median([t["downtime_s"] for t in encrypted])
    out["encrypted_vs_plain"] = round(out["stacklift_encrypted_downtime_median_s"] / out["stacklift_downtime_median_s"], 2)
    out["slowest_request_vs_downtime"] = round(out["client_slowest_request_median_s"] / out["stacklift_downtime_median_s"], 2)
    big, big_hand, big_encrypted = [], [], []
    for _round in range(ROUNDS):
        big_hand.append(big_redis_by_hand(node1, node2))
        big.append(big_redis(node1, node2))
        big_encrypted.append(big_redis(node1, node2, encrypt=True))
    out["redis_1gib"], out["redis_1gib_by_hand"], out["redis_1gib_encrypted"] = big, big_hand, big_encrypted
    out["redis_1gib_encrypted_downtime_median_s"] = median([b["downtime_s"] for b in big_encrypted])
    out["redis_1gib_downtime_median_s"] = median([b["downtime_s"] for b in big])
    out["redis_1gib_by_hand_downtime_median_s"] = median([b["downtime_s"] for b in big_hand])
    return out


def print_modules(modules, title="module"):
    """The per-module table: bare command, the module as a task and its own time, and their ratios."""
    print("%-22s %9s %14s %13s %8s %8s" % (title, "bare s", "module task s", "module own s", "task/x", "own/x"))
    for name, r in modules.items():
        cells = (name, r["bare_s"], r["module_task_s"], r["module_own_s"], r["task_vs_bare"], r["own_vs_bare"])
        print("%-22s %9s %14s %13s %8s %8s" % cells)


def main():
    lab = load_lab()
    node1, node2 = lab["node1"], lab["node2"]
    results = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": ROUNDS}
    results["modules"] = {} if "--migration-only" in sys.argv else bench_modules(node1, node2)
    results["migration"] = migrations(node1, node2)
    play(str(SHOP / "reset.yml"))
    out_dir = REPO / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / ("bench-%s.json" % time.strftime("%Y%m%dT%H%M%S"))
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_modules(results["modules"])
    m = results["migration"]
    print("\ndemo stack downtime, median of %d: by hand, sequential %s s; stacklift %s s; ratio %s (target <= 1.0)"
          % (ROUNDS, m["by_hand_downtime_median_s"], m["stacklift_downtime_median_s"], m.get("stacklift_vs_by_hand")))
    print("client's slowest request, median: %s s; %s x the downtime (target <= 1.5)"
          % (m["client_slowest_request_median_s"], m["slowest_request_vs_downtime"]))
    print("Redis with 1 GiB moved alone, downtime median: %s s (target <= 4); the bare podman commands, one after "
          "another: %s s" % (m["redis_1gib_downtime_median_s"], m["redis_1gib_by_hand_downtime_median_s"]))
    print("encrypted archives (AES-256-GCM): demo downtime median %s s (%s x unencrypted); 1 GiB Redis %s s"
          % (m["stacklift_encrypted_downtime_median_s"], m["encrypted_vs_plain"], m["redis_1gib_encrypted_downtime_median_s"]))
    for h in m["by_hand_sequential"]:
        print("  by hand: %s" % json.dumps(h))
    for b in m["redis_1gib"] + m["redis_1gib_by_hand"] + m["redis_1gib_encrypted"]:
        print("  1 GiB Redis: %s" % json.dumps(b))
    print("\nwritten to %s" % path)


if __name__ == "__main__":
    main()
