"""stacklift on the lab's Docker engines, each figure against the bare Docker commands doing the same work
in the same run (as bench.py does for Podman).

  make bench ENGINE=docker

Part 1, per module with engine=docker: the module as an Ansible task and its own time, against the bare
docker/ssh commands over SSH. Part 2: the demo shop migrated on Docker with a client, and on Podman in
the same run. Part 3: a Redis holding 512 MiB, where Docker's own checkpoint spends its time (Docker's
checkpoint and restore in place, CRIU's dump through containerd), and stacklift's migration of it.
Results go to bench-results/bench-docker-TIMESTAMP.json and are printed.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402  (bench/bench.py)
from bench import (  # noqa: E402
    REDIS, REPO, ROUNDS, SHOP, SSH_OPTS, median, module_time, play, print_modules, seconds, summarize, with_stacklift)
from labhosts import load_lab  # noqa: E402

NET, SUBNET, IP = "dbenchnet", "10.89.21.0/24", "10.89.21.5"
CRIU_CONF = "--annotation org.criu.config=/etc/criu/stacklift-docker.conf"
A = "/var/lib/stacklift/dbench/benchcache.tar.zst"


def fresh_cache(node):
    node.run("docker rm -f benchcache >/dev/null 2>&1; rm -rf /tmp/bare-cp; docker run -d --name benchcache --network %s "
             "--ip %s %s %s >/dev/null && until docker exec benchcache redis-cli ping >/dev/null 2>&1; do sleep 0.1; "
             "done; docker exec benchcache sh -c 'seq 1 20000 | sed \"s/.*/SET key& value&/\" | redis-cli --pipe' "
             ">/dev/null" % (NET, IP, CRIU_CONF, REDIS))


def bare_restore(node):
    """What a move needs of Docker itself: a new container made the same way, the checkpoint copied into
    its own directory (Docker refuses another one), started from it."""
    return ("cid=$(docker create --name benchcache --network %s --ip %s %s %s) && "
            "mkdir -p /var/lib/docker/containers/$cid/checkpoints && "
            "cp -a /tmp/bare-cp/cp1 /var/lib/docker/containers/$cid/checkpoints/ && "
            "docker start --checkpoint cp1 benchcache >/dev/null" % (NET, IP, CRIU_CONF, REDIS))


def bench_modules(node1, node2):
    ssh = {"target_host": node2.address, "key_file": "/root/.ssh/id_ed25519"}
    for h in (node1, node2):
        h.run("docker rm -f benchcache >/dev/null 2>&1; docker network rm -f %s >/dev/null 2>&1; "
              "docker network create --subnet %s %s >/dev/null; rm -rf /var/lib/stacklift/dbench /tmp/bare-cp "
              "/var/lib/stacklift/restored; mkdir -p /var/lib/stacklift/dbench" % (NET, SUBNET, NET))
    rows = dict((k, {"module_task_s": [], "module_own_s": [], "bare_s": []}) for k in (
        "container_checkpoint", "checkpoint_info", "checkpoint_transfer", "image_sync", "container_restore",
        "service_probe"))
    for _round in range(ROUNDS):
        fresh_cache(node1)
        rows["container_checkpoint"]["bare_s"].append(seconds(lambda: node1.run(
            "docker checkpoint create --checkpoint-dir=/tmp/bare-cp benchcache cp1 >/dev/null")))
        node1.run("scp -qr %s /tmp/bare-cp %s:/tmp/" % (SSH_OPTS, node2.address))
        fresh_cache(node1)
        node1.run("rm -f %s*" % A)
        t, r = module_time("node1", "container_checkpoint", {"name": "benchcache", "archive": A, "engine": "docker",
                                                             "tcp_established": True})
        rows["container_checkpoint"]["module_task_s"].append(t)
        rows["container_checkpoint"]["module_own_s"].append(r["checkpoints"][0]["seconds"])
        rows["checkpoint_info"]["bare_s"].append(seconds(lambda: node1.run(
            "tar --zstd -xOf %s container.json >/dev/null" % A)))
        t, r = module_time("node1", "checkpoint_info", {"path": A})
        rows["checkpoint_info"]["module_task_s"].append(t)
        node2.run("rm -rf /var/lib/stacklift/dbench; mkdir -p /var/lib/stacklift/dbench")
        rows["checkpoint_transfer"]["bare_s"].append(seconds(lambda: node1.run(
            "scp -q %s %s %s:/var/lib/stacklift/dbench/bare.tar.zst" % (SSH_OPTS, A, node2.address))))
        t, r = module_time("node1", "checkpoint_transfer", dict(ssh, src=A))
        rows["checkpoint_transfer"]["module_task_s"].append(t)
        rows["checkpoint_transfer"]["module_own_s"].append(r["seconds"])
        node2.run("docker rm -f benchcache >/dev/null 2>&1; docker rmi -f %s >/dev/null" % REDIS)
        rows["image_sync"]["bare_s"].append(seconds(lambda: node1.run(
            "docker save %s | ssh %s %s docker load -q >/dev/null" % (REDIS, SSH_OPTS, node2.address))))
        node2.run("docker rmi -f %s >/dev/null" % REDIS)
        t, r = module_time("node1", "image_sync", dict(ssh, archive=A, engine="docker"))
        rows["image_sync"]["module_task_s"].append(t)
        rows["image_sync"]["module_own_s"].append(r["seconds"])
        node2.run("docker rm -f benchcache >/dev/null 2>&1")
        rows["container_restore"]["bare_s"].append(seconds(lambda: node2.run(bare_restore(node2))))
        node2.run("docker rm -f benchcache >/dev/null; rm -rf /var/lib/stacklift/restored /tmp/bare-cp")
        t, r = module_time("node2", "container_restore", {"archive": A, "engine": "docker", "tcp_established": True})
        rows["container_restore"]["module_task_s"].append(t)
        rows["container_restore"]["module_own_s"].append(r["seconds"])
        rows["service_probe"]["bare_s"].append(seconds(lambda: node2.run("docker exec benchcache redis-cli ping")))
        t, r = module_time("node2", "service_probe", {"container": "benchcache", "probe": {"type": "redis"}, "engine": "docker"})
        rows["service_probe"]["module_task_s"].append(t)
        rows["service_probe"]["module_own_s"].append(r["elapsed"])
    for h in (node1, node2):
        h.run("docker rm -f benchcache >/dev/null 2>&1; docker network rm -f %s >/dev/null 2>&1; rm -rf "
              "/var/lib/stacklift/dbench /var/lib/stacklift/restored /tmp/bare-cp" % NET, check=False)
    return summarize(rows)


BIG = {"stacklift_stack": {
    "name": "dbig", "source": "node1", "target": "node2",
    "networks": [{"name": "dbignet", "subnet": "10.89.31.0/24"}],
    "services": [{"name": "big", "container": "dbig", "probe": {"type": "redis"}, "tcp": "established"}]},
    "stacklift_traffic_switch_tasks": "", "stacklift_engine": "docker"}


def start_big(node1, node2, mib):
    for h in (node1, node2):
        h.run("rm -rf /tmp/dbig-work /tmp/dbig-images", check=False)
    return bench.start_big(node1, node2, mib / 1024.0, engine="docker", name="dbig", prefix="10.89.31", options=CRIU_CONF)


def big(node1, node2, mib=512):
    """Where the time goes for a container with MIB MiB: Docker's own checkpoint and its restore in place,
    against CRIU's dump through containerd (what stacklift does); then stacklift's migration of it."""
    used = start_big(node1, node2, mib)
    out = {"used_memory_bytes": used}
    out["docker_checkpoint_create_s"] = round(seconds(lambda: node1.run("docker checkpoint create dbig cp1 >/dev/null")), 3)
    out["docker_start_from_checkpoint_s"] = round(seconds(lambda: node1.run("docker start --checkpoint cp1 dbig")), 3)
    node1.run("docker checkpoint rm dbig cp1", check=False)
    cid = node1.out("docker inspect -f '{{.Id}}' dbig")
    node1.run("mkdir -p /tmp/dbig-work /tmp/dbig-images")
    out["containerd_dump_s"] = round(seconds(lambda: node1.run(
        "ctr -n moby task checkpoint --exit --image-path /tmp/dbig-images --work-path /tmp/dbig-work %s" % cid)), 3)
    out["criu_dump_log_s"] = float(node1.out("grep -o 'Dumping finished successfully' /tmp/dbig-work/dump.log >/dev/null "
                                             "&& awk -F'[()]' '/Dumping finished/ {print $2}' /tmp/dbig-work/dump.log"
                                             " | tail -1", check=False) or 0)
    start_big(node1, node2, mib)
    extra = Path("/tmp/stacklift-bench-dbig.json")
    extra.write_text(json.dumps(BIG))
    report_out = play(str(REPO / "migrate_stack.yml"), "-e", "@%s" % extra,
                      "-e", "stacklift_report_dir=/tmp/stacklift-bench-reports",
                      "-e", "stacklift_journal_dir=/tmp/stacklift-bench-journal")
    path = [line.split("report: ", 1)[1].strip().strip('",') for line in report_out.splitlines() if "report: " in line][-1]
    report = json.loads(Path(path).read_text())
    out["stacklift_downtime_s"] = report["downtime_s"]
    out["stacklift_phases_s"] = dict((k, v["seconds"]) for k, v in report["services"]["big"]["phases"].items())
    out["keys_after"] = int(node2.out("docker exec dbig redis-cli dbsize"))
    for h in (node1, node2):
        h.run("docker rm -f dbig >/dev/null 2>&1; docker network rm -f dbignet >/dev/null 2>&1; "
              "rm -rf /tmp/dbig-work /tmp/dbig-images", check=False)
    return out


def main():
    lab = load_lab()
    node1, node2 = lab["node1"], lab["node2"]
    results = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": ROUNDS, "engine": "docker"}
    results["modules"] = bench_modules(node1, node2)
    runs = {"docker": [], "podman": []}
    for _round in range(ROUNDS):
        for engine in ("docker", "podman"):
            runs[engine].append(with_stacklift(engine=engine))
    results["demo"] = {"runs": runs, "docker_downtime_median_s": median([r["downtime_s"] for r in runs["docker"]]),
                       "podman_downtime_median_s": median([r["downtime_s"] for r in runs["podman"]]),
                       "docker_client_slowest_median_s": median([r["client_slowest_request_s"] for r in runs["docker"]]),
                       "docker_client_errors": sum(r["client_errors"] for r in runs["docker"])}
    results["redis_512mib"] = big(node1, node2)
    play(str(SHOP / "reset.yml"))
    out_dir = REPO / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / ("bench-docker-%s.json" % time.strftime("%Y%m%dT%H%M%S"))
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_modules(results["modules"], "module (docker)")
    d = results["demo"]
    print("\ndemo shop downtime, median of %d: Docker %s s, Podman %s s (same run); Docker client's slowest request "
          "%s s, %d errors" % (ROUNDS, d["docker_downtime_median_s"], d["podman_downtime_median_s"],
                               d["docker_client_slowest_median_s"], d["docker_client_errors"]))
    print("Redis with 512 MiB: %s" % json.dumps(results["redis_512mib"]))
    print("\nwritten to %s" % path)


if __name__ == "__main__":
    main()
