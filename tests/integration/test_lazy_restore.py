"""Lazy restore on the lab, for real: the runtime wrapper installed through the collection's module (twice, and a
bystander container unaffected), a Redis of 512 MiB of random values migrated with memory lazy (its pages served
from the source after the restore) and its keys checked with DEBUG DIGEST, and a lazy copy refused before the commit
(its fill killed, or its probe failing): the migration rolls back and nothing is lost."""

import json
import re
import subprocess

import pytest

from labhosts import REPO, run_module
from shoplab import playbook

REDIS = "localhost/stacklift/redis:latest"
NET, SUBNET, IP = "lazynet", "10.89.40.0/24", "10.89.40.5"
STACK = {"name": "lazy", "source": "node1", "target": "node2", "networks": [{"name": NET, "subnet": SUBNET}],
         "services": [{"name": "cache", "container": "lazycache", "probe": {"type": "redis"}, "tcp": "established",
                       "memory": "lazy"}]}
# 1000-byte random values (hex): what a cache holds, not DEBUG POPULATE's zeros
FILL = ("python3 -c 'import os,sys\nfor i in range(%d):\n k=b\"key:%%d\" %% i; v=os.urandom(500).hex().encode()\n "
        "sys.stdout.buffer.write(b\"*3\\r\\n$3\\r\\nSET\\r\\n$%%d\\r\\n%%s\\r\\n$1000\\r\\n%%s\\r\\n\" %% (len(k), k, v))' "
        "| podman exec -i lazycache redis-cli --pipe >/dev/null")


def clean(*hosts):
    for h in hosts:
        h.run("podman rm -f -t 0 lazywriter lazycache lazydb bystander >/dev/null 2>&1; podman network rm -f %s >/dev/null 2>&1; "
              "rm -rf /var/lib/stacklift/checkpoints/runs/*/lazycache* /var/lib/stacklift/checkpoints/runs/*/lazydb* "
              "/var/lib/stacklift/checkpoints/runs/*/lazywriter* /var/lib/stacklift/checkpoints/lazy.*; "
              "podman volume rm -f lazypgdata >/dev/null 2>&1" % NET, check=False)


def start_redis(node):
    """The lazycache Redis on NODE, on its own network, answering."""
    node.run("podman network create --subnet %s %s >/dev/null && podman run -d --name lazycache --network %s --ip %s "
             "--entrypoint /usr/bin/redis-server %s --bind 0.0.0.0 --protected-mode no --save '' --appendonly no "
             "--enable-debug-command yes >/dev/null && until podman exec lazycache redis-cli ping >/dev/null 2>&1; "
             "do sleep 0.1; done" % (SUBNET, NET, NET, IP, REDIS))


@pytest.fixture
def lazycache(node1, node2):
    """A Redis holding 512 MiB of random values on node1; its DEBUG DIGEST."""
    clean(node1, node2)
    start_redis(node1)
    node1.run(FILL % (512 * 1024 * 1024 // 1000), timeout=600)
    node1.run("podman exec lazycache redis-cli set session:42 cart-3-items EX 600 >/dev/null")
    yield node1.out("podman exec lazycache redis-cli debug digest")
    clean(node1, node2)


def migrate(tmp_path, *extra, stack=None, background=False):
    """migrate_stack.yml run on STACK (default: the lazy Redis): (its result, its report or None); BACKGROUND: the
    running playbook only."""
    stack = stack or STACK
    vars_file = tmp_path / "stack.json"
    vars_file.write_text(json.dumps({"stacklift_stack": stack}))
    res = playbook(REPO / "migrate_stack.yml", "-e", "@%s" % vars_file, *extra, report_dir=tmp_path / "reports",
                   background=background)
    if background:
        return res
    reports = sorted((tmp_path / "reports").glob("%s-*.json" % stack["name"]))
    return res, json.loads(reports[-1].read_text()) if reports else None


def test_the_wrapper_installs_once_and_leaves_other_containers_alone(node2):
    clean(node2)
    node2.run("podman run -d --name bystander --entrypoint /usr/bin/redis-server %s --save '' >/dev/null && "
              "until podman exec bystander redis-cli ping >/dev/null 2>&1; do sleep 0.1; done && "
              "podman exec bystander redis-cli set k v >/dev/null" % REDIS)
    res, failed = run_module("node2", "lazy_runtime", {"state": "absent"})
    assert not failed, res
    assert node2.out("podman info --format '{{.Host.OCIRuntime.Path}}'") != "/usr/local/libexec/stacklift/runc"
    # without the wrapper, the target's preflight refuses a lazy service (before anything is frozen); auto is eager there
    res, failed = run_module("node2", "host_preflight", {"role": "target", "containers": ["lazycache"], "memory": ["lazy"]})
    assert not failed and "memory lazy: stacklift's runtime wrapper is not installed (stacklift.migrate.lazy_runtime)" \
        in res["problems"] and res["lazy_restore"] is False, res
    res, failed = run_module("node2", "host_preflight", {"role": "target", "containers": ["lazycache"], "memory": ["auto"]})
    assert not failed and not [p for p in res["problems"] if "lazy" in p], res
    res, failed = run_module("node2", "lazy_runtime", {}, check=True)
    assert not failed and res["changed"] and not node2.run("test -e /usr/local/libexec/stacklift/runc", check=False).returncode == 0
    res, failed = run_module("node2", "lazy_runtime", {})
    assert not failed and res["changed"] and sorted(res["changed_files"]) == [  # the drop-in, the wrapper, its helpers
        "/etc/containers/containers.conf.d/50-stacklift-lazy.conf", "/usr/local/libexec/stacklift/pages.py",
        "/usr/local/libexec/stacklift/runc", "/usr/local/libexec/stacklift/tree.py"], res
    res, failed = run_module("node2", "lazy_runtime", {})
    assert not failed and not res["changed"], res
    res, failed = run_module("node2", "host_preflight", {"role": "target", "containers": ["lazycache"], "memory": ["lazy"]})
    assert not failed and res["lazy_restore"] is True and not [p for p in res["problems"] if "lazy" in p], res
    assert node2.out("podman info --format '{{.Host.OCIRuntime.Path}}'") == "/usr/local/libexec/stacklift/runc"
    # a container stacklift does not restore: exec, checkpoint and restore in place, eager, through the wrapper
    cid = node2.out("podman inspect -f '{{.Id}}' bystander")
    node2.run("podman container checkpoint bystander && podman container restore bystander")
    assert node2.out("podman exec bystander redis-cli get k") == "v"
    assert node2.run("ls /run/stacklift/lazy/%s.pid" % cid, check=False).returncode != 0  # no fill was started
    node2.run("podman rm -f -t 0 bystander >/dev/null")


def test_a_lazy_migration_keeps_every_key(node1, node2, lazycache, tmp_path):
    res, report = migrate(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    svc = report["services"]["cache"]
    assert svc["memory"] == "lazy" and svc["phases"]["fill"]["end"] >= svc["phases"]["commit"]["end"], svc
    # its pages stayed on the source, and the archive that crossed in the pause held none of them (512 MiB)
    assert svc["pages_from"] == "source" and svc["phases"]["checkpoint"]["archive_bytes"] < 64 << 20, svc
    assert svc["resident_s"] >= report["downtime_s"]
    assert node2.out("podman exec lazycache redis-cli debug digest", timeout=300) == lazycache
    assert 500 < int(node2.out("podman exec lazycache redis-cli ttl session:42")) <= 600
    assert node1.run("podman container exists lazycache", check=False).returncode != 0  # the source cleaned up


# Refused before the commit, while its memory is filling from the source, so rolled back with nothing lost: the
# daemon killed (SIGKILL, as the OOM killer would) once the container runs again (the copy stalls on its missing
# pages), or the copy's port dropped inside its network namespace (its probe fails). The source's restore in place
# takes its pages back from where they waited.
RUNNING = "[ \"$(podman inspect -f '{{.State.Running}}' lazycache 2>/dev/null)\" = true ]"
WHEN = {
    "mid_fill": "kill -9 $(cat $f) && echo killed",
    "probe_fails": "nsenter -t $(podman inspect -f '{{.State.Pid}}' lazycache) -n nft -f - <<EOF && echo dropped\n"
                   "table inet probefails { chain i { type filter hook input priority -10; tcp dport 6379 drop; }; }\nEOF",
}
REFUSED = {"mid_fill": "memory was not filled in|failed its redis probe", "probe_fails": "failed its redis probe"}


@pytest.mark.parametrize("when", sorted(WHEN))
def test_a_lazy_copy_refused_before_the_commit_rolls_back_with_nothing_lost(node1, node2, lazycache, tmp_path, when):
    node2.run("rm -f /run/stacklift/lazy/*", check=False)
    fault = subprocess.Popen(node2.ssh_cmd() + [
        "for i in $(seq 1 6000); do f=$(ls /run/stacklift/lazy/*.pid 2>/dev/null | head -1); "
        "if [ -n \"$f\" ] && %s; then [ -e \"${f%%.pid}.rc\" ] && echo too-late && exit 2; %s\n exit 0; fi; "
        "sleep 0.02; done; exit 1" % (RUNNING, WHEN[when])], stdout=subprocess.PIPE, text=True)
    try:  # (its probe must stay ready 3 s: the port is dropped within them, whenever the first answer came)
        res, report = migrate(tmp_path, "-e", "stacklift_probe_timeout=15", "-e", "stacklift_probe_stable_for=3")
    finally:
        out = fault.communicate(timeout=180)[0]
    assert "killed" in out or "dropped" in out, out
    assert res.returncode != 0 and report and report["outcome"] == "rolled_back", res.stdout[-3000:]
    assert report["services"]["cache"]["pages_from"] == "source", report["services"]["cache"]
    assert re.search(REFUSED[when], res.stdout), res.stdout[-3000:]
    assert node1.out("podman exec lazycache redis-cli debug digest", timeout=300) == lazycache
    assert node2.run("podman container exists lazycache", check=False).returncode != 0
    # and the stack moves afterwards
    again = tmp_path / "again"
    again.mkdir()
    res, report = migrate(again)
    assert res.returncode == 0, res.stdout[-3000:]
    assert node2.out("podman exec lazycache redis-cli debug digest", timeout=300) == lazycache


def test_a_fill_whose_daemon_dies_after_the_commit_is_finished_by_its_keeper(node1, node2, lazycache, tmp_path):
    """The daemon killed (SIGKILL, as the OOM killer would) once the commit is recorded on the target, while the
    memory still fills: its keeper, which holds the userfaultfd too (without it, Redis crashed here on zeroed
    memory), takes the fill over from the source's page server; every key is there, and the run succeeds, saying
    the keeper finished it."""
    node2.run("rm -f /run/stacklift/lazy/*", check=False)
    run = migrate(tmp_path, background=True)
    try:  # once the target has recorded the commit (its fence lifted), while the memory still fills
        out = node2.out("for i in $(seq 1 6000); do grep -q '\"step\": \"committed\"' "
                        "/var/lib/stacklift/checkpoints/lazy.journal 2>/dev/null && break; sleep 0.02; done; "
                        "f=$(ls /run/stacklift/lazy/*.pid | head -1); [ -e \"${f%.pid}.rc\" ] && echo too-late; "
                        "cat \"${f%.pid}.kept\"; kill -9 $(cat $f) && echo killed", timeout=180, check=False)
    finally:  # the run ends by itself either way (a killed controller would leave its windows to their timeouts)
        stdout = run.communicate(timeout=900)[0]
    assert "killed" in out and '"held": 1' in out and "too-late" not in out, (out, stdout[-3000:])
    assert run.returncode == 0, (stdout[-3000:], node2.out(
        "podman ps -a --format '{{.Names}} {{.Status}}'; podman logs --tail 30 lazycache 2>&1; "
        "cat /run/stacklift/lazy/*.finish /run/stacklift/lazy/*.keep.log; ip -br addr", check=False))
    report = json.loads(sorted((tmp_path / "reports").glob("lazy-*.json"))[-1].read_text())
    kept = report["services"]["cache"]["phases"]["fill"]["finished_by_keeper"]
    assert kept["state"] == "done" and kept["pages"] > 0 and "exited 137" in kept["daemon"], kept
    assert node2.out("podman exec lazycache redis-cli debug digest", timeout=300) == lazycache
    assert 500 < int(node2.out("podman exec lazycache redis-cli ttl session:42")) <= 600
    assert node2.run("pgrep -f '[p]ages.py keep'", check=False).returncode != 0  # done: nothing held any more
    assert node1.run("podman container exists lazycache", check=False).returncode != 0  # the source cleaned up


PG = "localhost/stacklift/postgres:latest"
PG_IP = "10.89.40.6"
PSQL = "podman exec lazydb psql -h %s -U postgres -Atq -c" % PG_IP  # the lab image trusts the network, not localhost
PG_SUM = "\"SELECT count(*) || ':' || sum(hashtext(v)::bigint) FROM t\""
PG_SERVICE = {"name": "db", "container": "lazydb", "probe": {"type": "postgres"}, "tcp": "established", "memory": "lazy"}
PG_STACK = dict(STACK, name="lazypg", services=[PG_SERVICE])


@pytest.fixture
def lazydb(node1, node2):
    """A PostgreSQL on node1 with 256 MiB of shared buffers and a table of about 200 MiB read into them; the table's
    checksum."""
    clean(node1, node2)
    ready = "until podman exec lazydb pg_isready -q -h %s -U postgres 2>/dev/null; do sleep 0.2; done" % PG_IP
    node1.run("podman network create --subnet %s %s >/dev/null && podman run -d --name lazydb --network %s --ip %s %s "
              ">/dev/null && %s && %s \"ALTER SYSTEM SET shared_buffers = '256MB'\" && podman restart lazydb >/dev/null && %s"
              % (SUBNET, NET, NET, PG_IP, PG, ready, PSQL, ready), timeout=300)
    node1.run("%s \"CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, "
              "1600000) g\" && %s 'CREATE EXTENSION pg_prewarm' && %s \"SELECT pg_prewarm('t')\"" % (PSQL, PSQL, PSQL),
              timeout=600)
    yield node1.out("%s %s" % (PSQL, PG_SUM), timeout=300)
    clean(node1, node2)


WRITER_IP = "10.89.40.7"
# A client in the stack: one connection, a row a few milliseconds, its own counter (in its memory, migrated
# with it): the rows are 1..N without a gap whatever the pause cut through. No short-lived process (a sleep a row):
# the preflight's `podman top` reads "?" for one that exits while it looks, and refuses the container.
WRITER = ("podman run -d --name lazywriter --network %s --ip %s --user 0 --entrypoint sh %s -c 'i=0; while :; do i=$((i+1)); "
          "echo \"INSERT INTO w VALUES ($i) ON CONFLICT DO NOTHING; SELECT pg_sleep(0.005);\"; done | psql -q -o /dev/null "
          "-h %s -U postgres "
          "-v ON_ERROR_STOP=1' >/dev/null" % (NET, WRITER_IP, PG, PG_IP))
WRITES = "\"SELECT count(*) || ':' || coalesce(max(id), 0) FROM w\""


def test_a_lazy_postgresql_migration_keeps_every_row(node1, node2, lazydb, tmp_path):
    """Its private pages restored lazily; its shared buffers (MAP_SHARED, which CRIU does not restore lazily)
    cross in the archive; its files (the table and its WAL, in the container's layer) are staged on the target
    before the fence, and only what a writer changed since crosses in the pause. The big table's rows are the
    rows at the fence, the writer's rows have no gap, and it writes on, on the target."""
    node1.run("%s 'CREATE TABLE w (id int PRIMARY KEY)' && %s" % (PSQL, WRITER))
    node1.run("until [ \"$(%s 'SELECT count(*) FROM w')\" -gt 100 ]; do sleep 0.2; done" % PSQL, timeout=60)
    res, report = migrate(tmp_path, stack=dict(PG_STACK, services=[
        PG_SERVICE, {"name": "writer", "container": "lazywriter", "depends_on": ["db"], "tcp": "established",
                     "probe": {"type": "command", "command": ["true"]}}]))
    assert res.returncode == 0, res.stdout[-3000:]
    svc = report["services"]["db"]
    assert svc["memory"] == "lazy" and svc["pages_from"] == "source" and svc["resident_s"] >= report["downtime_s"], svc
    staged, files = svc["phases"]["files"], svc["phases"]["checkpoint"]["files"]
    assert staged["bytes"] > 200e6 and staged["end"] < svc["phases"]["fence"]["start"], svc["phases"]
    assert 0 < files["synced_bytes"] < 64e6, files  # what the writer changed since the staging
    assert node2.out("%s %s" % (PSQL, PG_SUM), timeout=300) == lazydb
    count, top = (int(x) for x in node2.out("%s %s" % (PSQL, WRITES)).split(":"))
    assert count == top > 100, "the writer's rows have a gap: %d rows up to %d" % (count, top)
    node2.run("until [ \"$(%s 'SELECT max(id) FROM w')\" -gt %d ]; do sleep 0.2; done" % (PSQL, top + 50), timeout=60)
    node2.run("%s \"INSERT INTO t VALUES (0, 'after')\"" % PSQL)  # and it takes writes
    assert node1.run("podman container exists lazydb", check=False).returncode != 0


def test_a_postgresql_on_a_named_volume_moves_with_the_volume_staged_before_the_fence(node1, node2, tmp_path):
    """Its data directory on a named volume (as a real database keeps it): the volume is staged on the target while
    it serves and left out of the archive, the target's restore makes the volume and the wrapper fills it (exactly:
    nothing else in it), and every row is there, eagerly restored."""
    clean(node1, node2)
    ready = "until podman exec lazydb pg_isready -q -h %s -U postgres 2>/dev/null; do sleep 0.2; done" % PG_IP
    try:
        node1.run("podman network create --subnet %s %s >/dev/null && podman run -d --name lazydb --network %s --ip %s "
                  "-v lazypgdata:/var/lib/postgresql/17/main %s >/dev/null && %s" % (SUBNET, NET, NET, PG_IP, PG, ready),
                  timeout=300)
        node1.run("%s \"CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM "
                  "generate_series(1, 800000) g\"" % PSQL, timeout=600)
        before = node1.out("%s %s" % (PSQL, PG_SUM), timeout=300)
        res, report = migrate(tmp_path, stack=dict(PG_STACK, services=[dict(PG_SERVICE, memory="eager")]))
        assert res.returncode == 0, res.stdout[-3000:]
        svc = report["services"]["db"]
        assert svc["phases"]["files"]["trees"] == ["rootfs", "volume-lazypgdata"], svc["phases"]["files"]
        assert svc["phases"]["files"]["bytes"] > 100e6, svc["phases"]["files"]
        assert node2.out("%s %s" % (PSQL, PG_SUM), timeout=300) == before
        assert node2.out("podman volume inspect -f '{{.Name}}' lazypgdata") == "lazypgdata"
        assert node1.run("podman volume exists lazypgdata", check=False).returncode != 0  # gone with its source
        node2.run("%s \"INSERT INTO t VALUES (0, 'after')\"" % PSQL)
    finally:
        clean(node1, node2)


def test_precopy_is_refused_before_anything_is_frozen_where_the_kernel_lacks_soft_dirty(node1, node2, tmp_path):
    """This machine's kernel has no CONFIG_MEM_SOFT_DIRTY: precopy+lazy is refused by the preflight, naming it, and
    the service runs on untouched; auto takes lazy there, without pre-copy."""
    clean(node1, node2)
    start_redis(node1)
    node1.run("podman exec lazycache redis-cli set session:7 kept >/dev/null")
    try:
        pid = node1.out("podman inspect -f '{{.State.Pid}}' lazycache")
        res, failed = run_module("node1", "host_preflight", {"role": "source", "containers": ["lazycache"],
                                                             "memory": ["auto"]})
        assert not failed and res["source_facts"]["pre_copy"] is False and not res["problems"], res
        res, _report = migrate(tmp_path, stack=dict(STACK, services=[dict(STACK["services"][0], memory="precopy+lazy")]))
        assert res.returncode != 0
        assert re.search(r"preflight failed, nothing was touched: node1: memory precopy\+lazy: this kernel does not "
                         r"track the pages written to \(CONFIG_MEM_SOFT_DIRTY", res.stdout), res.stdout[-3000:]
        # the same process serves on, never frozen, never fenced
        assert node1.out("podman inspect -f '{{.State.Pid}}' lazycache") == pid
        assert node1.out("podman exec lazycache redis-cli get session:7") == "kept"
        assert node1.run("nsenter -t %s -n nft list table inet stacklift_fence" % pid, check=False).returncode != 0
        assert node2.run("podman container exists lazycache", check=False).returncode != 0
    finally:
        clean(node1, node2)
