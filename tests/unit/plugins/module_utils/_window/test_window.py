"""The window's two sides: what they decide and record, with only the engine's and nft's commands faked."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._container import checkpoint as checkpointing
from ansible_collections.stacklift.migrate.plugins.module_utils._window import protocol, slots
from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences
from ansible_collections.stacklift.migrate.plugins.module_utils._window import base as window
from ansible_collections.stacklift.migrate.plugins.module_utils._window import source as window_source
from ansible_collections.stacklift.migrate.plugins.module_utils._window import target as window_target
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import sha256_file, write_manifest
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal, fold
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, make_archive


HOST = {
    "podman info": {"host": {"ociRuntime": {"name": "runc", "version": "1.1.15"}, "cgroupVersion": "v1",
                             "kernel": "6.18.44"}},
    "podman version": {"Client": {"Version": "5.4.2"}},
    "criu --version": (0, "Version: 4.2.1\n", ""),
    "podman top": (0, "HUSER\nroot\n", ""),
    "podman diff": {"changed": [], "added": [], "deleted": []},
    "podman unmount": (0, "", ""),
    "nft": (0, "", ""),
}
SERVICES = {"db": {"container": "shop-db", "tcp": "established", "probe": {"type": "tcp", "port": 5432}},
            "cache": {"container": "shop-cache", "tcp": "established", "probe": {"type": "tcp", "port": 6379}},
            "app": {"container": "shop-app", "tcp": "established", "probe": {"type": "tcp", "port": 8080}}}
TIERS = [["db", "cache"], ["app"]]


class Containers:
    """The engine's view of the containers, changed by the faked checkpoint and restore commands."""

    def __init__(self, **state):
        self.state = dict(state)  # name -> running | exited | absent
        self.ids = {n: "id-" + n for n in state}
        self.fenced = set()  # pids with a fence in their network namespace

    def nsenter(self, argv):
        pid = int(argv[2])
        if "list" in argv:
            return (0, "table", "") if pid in self.fenced else (1, "", "Error: No such file or directory")
        if "delete" in argv:
            self.fenced.discard(pid)
        else:
            self.fenced.add(pid)
        return 0, "", ""

    def pid(self, name):
        return 100 + sorted(self.ids).index(name)

    def inspect(self, argv):
        """podman container inspect -- NAME...: those there, and 125 naming the others."""
        found, missing = [], []
        for name in argv[argv.index("--") + 1:]:
            st = self.state.get(name, "absent")
            if st == "absent":
                missing.append("Error: no such container %s" % name)
                continue
            found.append({"Id": self.ids[name], "Name": name, "Image": "img", "State": {
                "Running": st == "running", "Checkpointed": st == "exited", "Status": st, "Pid": self.pid(name)},
                "NetworkSettings": {"Networks": {"shopnet": {"IPAddress": "10.89.10.%d" % self.pid(name)}}}})
        return (125 if missing else 0), json.dumps(found) if found else "", "\n".join(missing)


def engine_runner(tmp_path, containers, fail_checkpoint=(), fail_restore=()):
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)

    def checkpoint(argv):
        name = argv[-1]
        if name in fail_checkpoint:
            return 125, "", "Error: CRIU failed for %s" % name
        make_archive(Path(argv[argv.index("--export") + 1]), "zstd")
        containers.state[name] = "exited"
        return 0, "{}", ""

    def restore(argv):
        name = argv[-1]
        if name in fail_restore:
            return 125, "", "Error: restore of %s failed" % name
        if "--import" in argv:
            name = {"cache": "shop-cache"}.get("cache")  # make_archive's config names "cache"
            containers.ids[name] = "new-" + name
        containers.state[name] = "running"
        return 0, "{}", ""

    def remove(argv):
        containers.state[argv[-1]] = "absent"
        return 0, "", ""
    answers = dict(HOST, **{"podman container inspect": containers.inspect, "podman container checkpoint": checkpoint,
                            "podman container restore": restore, "podman rm": remove, "nsenter": containers.nsenter,
                            "podman mount": (0, str(root) + "\n", "")})
    return FakeRunner(answers)


@pytest.fixture(autouse=True)
def full_capabilities(monkeypatch):
    monkeypatch.setattr(checkpointing, "cap_bounding_set", lambda: int("1ffffffffff", 16))


def make_window(cls, tmp_path, runner, services=None, **kw):
    services = services or SERVICES
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    host.proc = str(tmp_path / "proc")  # the containers' processes: fake_proc
    return cls(host, "shop", "r1", str(tmp_path / "ck"), {n: dict(s, name=n) for n, s in services.items()},
               TIERS, **kw)


def fake_proc(tmp_path, containers, start=1000, only=None):
    """/proc entries for the containers' processes (Containers.pid), started at START."""
    for name in only or containers.ids:
        d = tmp_path / "proc" / str(containers.pid(name))
        d.mkdir(parents=True, exist_ok=True)
        (d / "stat").write_text("%d (init) S %s %d 0\n" % (containers.pid(name), " ".join(["0"] * 18), start))


def another_stack_in_its_window(slot_dir, until):
    """Another stack of the drain in its window on this host (holding its one slot, in a thread)
    until UNTIL() returns."""
    taken = threading.Event()

    def other():
        with slots.window_slot(slot_dir, 1, 0):
            taken.set()
            until()
    threading.Thread(target=other).start()
    taken.wait(5)


class Sender:
    def __init__(self):
        self.sent, self.aborted, self.told = [], [], []

    def __call__(self, name, archive, manifest, sha256):
        assert sha256_file(archive) == sha256  # only durable, whole archives are sent
        self.sent.append(name)
        return {"bytes": os.path.getsize(archive)}

    def abort(self, msg):
        self.aborted.append(msg)

    def tell(self, kind, msg=None):
        self.told.append((kind, len(self.sent)))  # what it told the targets, after how many archives

    def connect_all(self):
        self.connected = True

    def committed(self, wait=1.0):
        """Whether the targets serve within WAIT: once ``on_targets``, when given, is set."""
        on_targets = getattr(self, "on_targets", None)
        if on_targets is None:
            time.sleep(wait)
            return False
        return on_targets.wait(wait)


def test_source_fences_everything_first_then_checkpoints_and_sends_each_archive(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    sender = Sender()
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender)
    events = a.checkpointed()
    steps = [(e["step"], e["service"]) for e in events]
    assert steps[:3] == [("fenced", "db"), ("fenced", "cache"), ("fenced", "app")]
    assert sorted(sender.sent) == ["app", "cache", "db"] and not sender.aborted
    assert sender.told == [("window", 0)]  # the targets' wait for the archives counts from here
    # Fences went up before the first checkpoint.
    calls = [" ".join(c) for c in runner.calls]
    first_ckpt = next(i for i, c in enumerate(calls) if "container checkpoint" in c)
    assert sum(1 for c in calls[:first_ckpt] if c.startswith("nsenter") and "-f -" in c) == 3
    state = fold(Journal(str(tmp_path / "ck" / "shop.journal")).records("r1"))
    assert all({"fenced", "checkpointed", "sent"} <= set(s) for s in state["services"].values())
    # Called again for the same run, nothing is done twice.
    sender.sent.clear()
    again = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender)
    again.checkpointed()
    assert sender.sent == [] and len([c for c in runner.calls if "checkpoint" in c]) == 3


def test_one_checkpoint_failing_records_the_others_and_tells_the_target(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers, fail_checkpoint=("shop-cache",))
    sender = Sender()
    with pytest.raises(window.WindowError) as e:
        make_window(window_source.SourceWindow, tmp_path, runner, sender=sender).checkpointed()
    assert "cache: podman container checkpoint shop-cache failed" in e.value.msg
    assert sender.aborted and "shop-cache" in sender.aborted[0]
    state = fold(Journal(str(tmp_path / "ck" / "shop.journal")).records("r1"))
    assert "checkpointed" in state["services"]["db"] and "checkpointed" not in state["services"]["cache"]
    assert not os.path.exists(run_dir(tmp_path) / "shop-cache.tar.zst")


def test_source_rollback_restores_in_place_lists_every_problem_and_lifts_every_fence(tmp_path):
    containers = Containers(**{"shop-db": "exited", "shop-cache": "exited", "shop-app": "running"})
    containers.fenced.add(containers.pid("shop-app"))
    runner = engine_runner(tmp_path, containers, fail_restore=("shop-cache",))
    with pytest.raises(window.WindowError) as e:
        make_window(window_source.SourceWindow, tmp_path, runner).running()
    assert e.value.problems == ["cache: restoring it in place failed: podman container restore shop-cache failed: "
                                "['Error: restore of shop-cache failed'] (its archive stays at %s)"
                                % (run_dir(tmp_path) / "shop-cache.tar.zst")]
    restores = [c for c in runner.calls if c[1:3] == ["container", "restore"]]
    assert [c[-1] for c in restores] == ["shop-db", "shop-cache"] and all("--import" not in c for c in restores)
    assert containers.state == {"shop-db": "running", "shop-cache": "exited", "shop-app": "running"}
    lifted = [c for c in runner.calls if c[0] == "nsenter" and "delete" in c]
    # The app, never checkpointed, had its fence lifted even though the cache failed; nothing is removed.
    assert [int(c[2]) for c in lifted] == [containers.pid("shop-app")] and not containers.fenced
    # The in-place restores happen behind the host's fence (a new namespace has its address before
    # CRIU has its sockets back), which comes down last.
    calls = [" ".join(c) for c in runner.calls]
    up = calls.index("nft -f -")
    first_restore = next(i for i, c in enumerate(calls) if "container restore" in c)
    down = max(i for i, c in enumerate(calls) if c.startswith("nft delete table "))
    assert up < first_restore < down == max(i for i, c in enumerate(calls) if c.startswith(("nft", "nsenter", "podman")))
    assert {c for c in calls if c.startswith("nft delete table ")} == {"nft delete table inet stacklift_shop",
                                                                       "nft delete table bridge stacklift_shop"}
    assert not [c for c in runner.calls if c[:2] == ["podman", "rm"]]


def run_dir(tmp_path, run="r1"):
    """Where run RUN's archives lie on a host (protocol.run_archive_dir)."""
    return tmp_path / "ck" / "runs" / run


def write_arrival(tmp_path, name, corrupt=False, run="r1", directory=None, stack="shop"):
    """NAME's archive of RUN as its source sends it (into the run's directory, unless DIRECTORY)."""
    d = directory or run_dir(tmp_path, run)
    d.mkdir(parents=True, exist_ok=True)
    archive = make_archive(d / ("%s.tar.zst" % name), "zstd")
    digest = sha256_file(archive)
    if corrupt:
        with open(archive, "r+b") as f:
            f.seek(10)
            f.write(b"XX")
    write_manifest(archive, {"sha256": digest, "stack": stack, "run_id": run})
    return archive


def test_target_refuses_an_archive_damaged_in_transit_and_restores_nothing(tmp_path):
    containers = Containers()
    runner = engine_runner(tmp_path, containers)
    write_arrival(tmp_path, "shop-db", corrupt=True)
    write_arrival(tmp_path, "shop-cache")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=2)
    with pytest.raises(window.WindowError) as e:
        a.restored()
    assert "damaged in transit; not restoring" in e.value.msg
    assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]


def test_a_target_never_restores_an_archive_of_another_run_under_the_same_name(tmp_path):
    """Issue 20: an archive kept from the move here (run r0), and one container_checkpoint left in the
    archive directory, lie under the container's name. Run r1's target waits for r1's own and reports them."""
    runner = engine_runner(tmp_path, Containers())
    kept = write_arrival(tmp_path, "shop-db", run="r0")
    loose = write_arrival(tmp_path, "shop-db", run=None, directory=tmp_path / "ck")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=0.5)
    with pytest.raises(window.WindowError, match="did not arrive within"):
        a.restored()
    assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]
    reported = [e for e in a.events if e["step"] == "other_archives"]
    assert [(e["service"], sorted(e["paths"])) for e in reported] == [("db", sorted([kept, loose]))]
    assert os.path.exists(kept) and os.path.exists(loose)  # set aside, never removed: they may be someone's backup


def test_a_target_refuses_a_manifest_that_names_another_run_or_stack(tmp_path):
    runner = engine_runner(tmp_path, Containers())
    for run, stack in (("r0", "shop"), ("r1", "shop2")):
        archive = write_arrival(tmp_path, "shop-db", stack=stack)
        write_manifest(archive, {"sha256": sha256_file(archive), "stack": stack, "run_id": run})
        a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=1)
        with pytest.raises(window.WindowError, match="is not this run's archive .*names stack %r, run %r" % (stack, run)):
            a.restored()
    assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]


def test_the_source_writes_its_stack_and_run_into_each_manifest_in_the_runs_own_directory(tmp_path):
    containers = Containers(**{"shop-db": "running"})
    a = make_window(window_source.SourceWindow, tmp_path, engine_runner(tmp_path, containers), sender=Sender(),
                    services={"db": SERVICES["db"]})
    a.checkpointed()
    manifest = json.loads((run_dir(tmp_path) / "shop-db.tar.zst.stacklift.json").read_text())
    assert (manifest["stack"], manifest["run_id"]) == ("shop", "r1")
    assert manifest["sha256"] == sha256_file(str(run_dir(tmp_path) / "shop-db.tar.zst"))
    assert [oct(os.stat(d).st_mode & 0o777) for d in (tmp_path / "ck", run_dir(tmp_path).parent, run_dir(tmp_path))] \
        == ["0o700"] * 3


def test_no_two_stack_names_share_a_host_fence_table():
    names = ["shop", "shop-a", "shop_a", "shop.a", "shop__a", "shop_ha", "shop-h", "a" * 40 + "x", "a" * 40 + "y",
             "shop_-a", "shop-_a", "shop\u00e9"]
    tables = [fences.host_fence_table(n) for n in names]
    assert len(set(tables)) == len(names), tables
    assert tables[0] == "stacklift_shop" and tables[1] == "stacklift_shop_ha"
    assert all(len(t) < 256 for t in tables) and fences.host_fence_table("x" * 63).endswith("x" * 63)


def test_the_host_fence_lets_restored_containers_of_the_stack_reach_each_other_and_is_written_once():
    """Issue 20: an app's restored connection to its database must work while its probe runs; a packet to a
    container whose sockets are not back yet stays dropped (its new namespace would answer with a reset).
    Same-bridge traffic passes the inet hooks only with br_netfilter: the bridge family holds it too."""
    script = fences.host_fence_script("stacklift_shop").splitlines()
    for family in ("inet", "bridge"):
        mine = [line for line in script if " %s stacklift_shop" % family in line or line.startswith("table %s " % family)]
        flush = mine.index("flush chain %s stacklift_shop forward" % family)
        accepts = [i for i, line in enumerate(mine) if line.endswith("accept")]
        drops = [i for i, line in enumerate(mine) if line.endswith("drop")]
        assert flush < min(accepts) and max(accepts) < min(drops) and len(accepts) == 2 and len(drops) == 4
        assert mine[accepts[0]].endswith("ip saddr @r4 ip daddr @r4 accept")
    runner = FakeRunner({"nft": (0, "", "")})
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    host.conntrack = None
    scripts = []
    host._nft = lambda args, data=None, **kw: scripts.append(data)
    host.fence_addresses("stacklift_shop", ["10.89.10.2", "fd00::2"])
    host.addresses_restored("stacklift_shop", ["10.89.10.2"])
    assert scripts == ["add element inet stacklift_shop v4 { 10.89.10.2 }\nadd element bridge stacklift_shop v4 { 10.89.10.2 }\n"
                       "add element inet stacklift_shop v6 { fd00::2 }\nadd element bridge stacklift_shop v6 { fd00::2 }\n",
                       "add element inet stacklift_shop r4 { 10.89.10.2 }\nadd element bridge stacklift_shop r4 { 10.89.10.2 }\n"]


def test_target_stops_waiting_when_the_source_gives_up(tmp_path):
    runner = engine_runner(tmp_path, Containers())
    a = make_window(window_target.TargetWindow, tmp_path, runner, wait_timeout=30)
    (tmp_path / "ck").mkdir(exist_ok=True)
    (tmp_path / "ck" / "shop.abort").write_text(json.dumps({"run": "r1", "msg": "db: CRIU failed"}))
    with pytest.raises(window.WindowError) as e:
        a.restored()
    assert "the source gave up: db: CRIU failed" in e.value.msg
    # a rollback says the same to a call still waiting, whose source never started
    protocol.write_note(str(tmp_path / "ck"), "shop", "abort", "r1", "the migration is rolled back")
    with pytest.raises(window.WindowError, match="the source gave up: the migration is rolled back"):
        make_window(window_target.TargetWindow, tmp_path, runner, wait_timeout=30).restored()
    assert protocol.read_note(str(tmp_path / "ck"), "shop", "abort", "r2") is None  # another run's is not ours


def test_target_rollback_refuses_after_the_commit_and_spares_containers_of_others(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running"})
    runner = engine_runner(tmp_path, containers)
    marker = Journal(str(tmp_path / "ck" / "shop.journal"))
    marker.append("restored", run="r1", service="db", container_id="id-shop-db")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"], "cache": SERVICES["cache"]})
    with pytest.raises(window.WindowError) as e:
        a.absent()
    # Ours (recorded restored by r1) is removed; a running shop-cache that r1 never made is not.
    assert e.value.problems == ["cache: a running container 'shop-cache' here was not restored by run r1; "
                                "not removing it"]
    assert containers.state == {"shop-db": "absent", "shop-cache": "running"}
    marker.append("ready", run="r1", service="db")
    marker.append("committed", run="r1", service="db")
    with pytest.raises(window.WindowError) as e:
        make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}).absent()
    assert "was committed on this host" in e.value.msg


@pytest.mark.parametrize("moving, ready", [(True, True), (False, False)])
def test_a_target_probe_with_a_progress_command_needs_the_value_to_move(tmp_path, moving, ready):
    containers = Containers(**{"shop-db": "running"})
    runner = engine_runner(tmp_path, containers)
    reads = []

    def execute(argv):
        if argv[-1] == "counter":
            reads.append(1)
            return 0, "%d\n" % (len(reads) if moving else 7), ""
        return 0, "", ""
    runner.answers["podman exec"] = execute
    probe = {"type": "command", "command": ["true"], "progress_command": ["cat", "counter"], "interval": 0.01,
             "timeout": 0.3}
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": dict(SERVICES["db"], probe=probe)})
    if ready:
        a._probe("db")
        assert a.done("db", "ready")
    else:
        with pytest.raises(window.WindowError, match="no progress: value still '7'"):
            a._probe("db")
    assert ["podman", "exec", "--", "shop-db", "cat", "counter"] in runner.calls


def test_a_target_rollback_removes_the_volumes_its_restore_made(tmp_path):
    containers = Containers(**{"shop-cache": "running"})
    runner = engine_runner(tmp_path, containers)
    runner.answers["podman volume rm"] = (0, "", "")
    write_arrival(tmp_path, "shop-cache")
    manifest = run_dir(tmp_path) / "shop-cache.tar.zst.stacklift.json"
    manifest.write_text(json.dumps(dict(json.loads(manifest.read_text()), volumes=["shopcache"])))
    Journal(str(tmp_path / "ck" / "shop.journal")).append("restored", run="r1", service="cache",
                                                          container_id="id-shop-cache")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"cache": SERVICES["cache"]})
    a.absent()
    assert ["podman", "volume", "rm", "--", "shopcache"] in runner.calls
    assert a.done("cache", "volume_removed") and not manifest.exists()


def test_the_source_clean_up_after_the_commit_removes_the_containers_named_volumes(tmp_path):
    # found by moving a stack back after a drain: the source's stale copy of a volume blocked the return
    containers = Containers(**{"shop-cache": "exited"})
    runner = engine_runner(tmp_path, containers)
    real_inspect = containers.inspect

    def inspect_with_volume(argv):
        rc, out, err = real_inspect(argv)
        if rc == 0:
            data = json.loads(out)
            data[0]["Mounts"] = [{"Type": "volume", "Name": "shopcache", "Source": "/v/shopcache/_data"}]
            out = json.dumps(data)
        return rc, out, err
    runner.answers["podman container inspect"] = inspect_with_volume
    runner.answers["podman volume rm"] = (2, "", "Error: volume shopcache is being used by container other")
    a = make_window(window_source.SourceWindow, tmp_path, runner, services={"cache": SERVICES["cache"]})
    a.absent()
    assert ["podman", "volume", "rm", "--", "shopcache"] in runner.calls
    assert containers.state["shop-cache"] == "absent" and a.done("cache", "removed")  # one still in use stays


def test_a_target_forgets_its_connection_tracking_of_the_addresses_it_fences(monkeypatch):
    # a stack moved back to a host it ran on: the old conntrack entries would drop its restored connections
    monkeypatch.setattr(fences, "_which", lambda b: "/usr/sbin/" + b)
    runner = FakeRunner({"nft": (0, "", ""), "conntrack": (1, "", "0 flow entries have been deleted.")})
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    host.fence_addresses("stacklift_shop", ["10.89.10.3"])
    assert runner.commands("conntrack") == [["/usr/sbin/conntrack", "-D", "-s", "10.89.10.3"],
                                            ["/usr/sbin/conntrack", "-D", "-d", "10.89.10.3"]]
    monkeypatch.setattr(fences, "_which", lambda b: None)
    runner.calls[:] = []
    fences.Host(PodmanEngine(runner, binary="podman"), runner).fence_addresses("stacklift_shop", ["10.89.10.3"])
    assert not runner.commands("conntrack")


def test_a_restore_whose_record_cannot_be_written_takes_its_copy_away(tmp_path, monkeypatch):
    # found by the fault matrix: the target's disk filled between the restore and its record, and the
    # unrecorded copy outlived the rollback
    containers = Containers(**{"shop-cache": "absent"})
    runner = engine_runner(tmp_path, containers)
    runner.answers["nft"] = (0, "", "")
    runner.answers["podman rm"] = lambda argv: (containers.state.__setitem__("shop-cache", "absent") or (0, "", ""))
    write_arrival(tmp_path, "shop-cache")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"cache": SERVICES["cache"]})
    real = a.record

    def record(step, name, **kw):
        if step == "restored":
            raise OSError(28, "No space left on device")
        return real(step, name, **kw)
    monkeypatch.setattr(a, "record", record)
    with pytest.raises(window.WindowError, match="could not be written.*removed again"):
        a.started = time.time()
        a._restore("cache")
    assert containers.state["shop-cache"] == "absent"


def test_a_part_file_renamed_into_place_while_the_target_counts_is_not_an_error(tmp_path):
    # Seen in CI: the target listed a transfer's part file, the sender renamed it, and the size
    # look failed the restore ("No such file or directory: .shop-cache.tar.zst.part-...").
    part = tmp_path / ".a.tar.zst.part-1"
    part.write_bytes(b"x" * 10)
    assert window_target.bytes_of([str(part), str(tmp_path / ".a.tar.zst.part-gone")]) == 10


def test_an_agent_runs_at_the_niceness_asked_and_a_refusal_is_a_warning(monkeypatch):
    from ansible_collections.stacklift.migrate.plugins.module_utils._window import module as window_module

    class Module:
        def __init__(self, nice):
            self.params, self.warnings = {"nice": nice}, []

        def warn(self, msg):
            self.warnings.append(msg)

        def fail_json(self, **kw):
            raise AssertionError(kw["msg"])

    calls = []
    monkeypatch.setattr(window_module.os, "setpriority", lambda which, who, n: calls.append((which, who, n)))
    window_module.set_nice(Module(-5))
    window_module.set_nice(Module(0))
    assert calls == [(os.PRIO_PROCESS, 0, -5)]

    def refuse(which, who, n):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(window_module.os, "setpriority", refuse)
    m = Module(-5)
    window_module.set_nice(m)
    assert m.warnings == ["cannot run at niceness -5 here ([Errno 1] Operation not permitted); running at the host's own"]
    with pytest.raises(AssertionError, match="nice must be from -20 to 19, not -30"):
        window_module.set_nice(Module(-30))


def test_a_source_with_a_window_limit_waits_for_a_slot_before_it_touches_anything(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    sender = Sender()
    slot_dir = str(tmp_path / "windows")
    with slots.window_slot(slot_dir, 1, 0):  # another stack of the drain freezes on this host
        with pytest.raises(window.WindowError, match=r"no window free on this host in 0.3 s \(at most 1 stack at"):
            a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender, windows=1, windows_timeout=0.3)
            a.slot_dir = slot_dir
            a.checkpointed()
    assert not any(c[0] == "nsenter" or "checkpoint" in c for c in runner.calls), runner.calls
    assert sender.aborted and "no window free" in sender.aborted[0]  # the target stops waiting
    sender.aborted.clear()

    # The other stack's last archive is sent a moment later: this one goes on then.
    fake_proc(tmp_path, containers)
    another_stack_in_its_window(slot_dir, lambda: time.sleep(0.4))
    # Its archives sent, this stack holds its slot until the controller's commit note.
    held = []

    def commit_later():
        while not sender.sent or len(sender.sent) < 3:
            time.sleep(0.05)
        time.sleep(0.3)
        try:
            with slots.window_slot(slot_dir, 1, 0):
                held.append(False)
        except slots.NoSlot:
            held.append(True)
        protocol.write_note(str(tmp_path / "ck"), "shop", "commit", "r1")
    threading.Thread(target=commit_later).start()
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender, windows=1, windows_timeout=5)
    a.slot_dir = slot_dir
    events = a.checkpointed()
    assert events[0]["step"] == "window" and events[0]["slot"] == 0 and events[0]["waited_s"] > 0.2
    assert events[-1]["step"] == "window_given_back" and events[-1]["note"] == "commit" and held == [True]
    assert sorted(sender.sent) == ["app", "cache", "db"] and not sender.aborted and sender.connected
    # given back once the note came
    with slots.window_slot(slot_dir, 1, 0) as (slot, waited):
        assert slot == 0


def test_a_rolled_back_run_called_again_fences_nothing_and_fails(tmp_path):
    """Issue 20: the same run id again, after its rollback, fenced the running containers, sent the old
    archives and reported success."""
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    marker = Journal(str(tmp_path / "ck" / "shop.journal"))
    for step in ("fenced", "checkpointed", "rolled_back", "unfenced"):
        marker.append(step, run="r1", service="db")
    sender = Sender()
    with pytest.raises(window.WindowError, match="run r1 of stack shop was rolled back on this host .*start a new run"):
        make_window(window_source.SourceWindow, tmp_path, runner, sender=sender).checkpointed()
    assert not any(c[0] == "nsenter" or "checkpoint" in c for c in runner.calls) and not sender.sent
    marker.append("removed", run="r1", service="db")
    with pytest.raises(window.WindowError, match="rolled back on this host \\(removed: db\\)"):
        make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}).restored()
    assert not runner.commands("nft")


def test_a_source_waiting_for_its_slot_reads_the_rollbacks_abort_note_and_never_fences(tmp_path):
    """Issue 20: a rollback came while the source waited for its host's window slot."""
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    slot_dir, sender = str(tmp_path / "windows"), Sender()
    go = threading.Event()
    another_stack_in_its_window(slot_dir, lambda: go.wait(5))
    threading.Timer(0.3, protocol.write_note, (str(tmp_path / "ck"), "shop", "abort", "r1", "rolled back")).start()
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender, windows=1, windows_timeout=5)
    a.slot_dir = slot_dir
    start = time.time()
    with pytest.raises(window.WindowError, match="given up while waiting for a window on this host: rolled back"):
        a.checkpointed()
    go.set()
    assert time.time() - start < 1.5 and not sender.told
    assert not any(c[0] == "nsenter" or "checkpoint" in c for c in runner.calls), runner.calls
    # the note already there when the slot is free: given up before the fence all the same
    with pytest.raises(window.WindowError, match="given up"):
        make_window(window_source.SourceWindow, tmp_path, runner, sender=sender).checkpointed()
    assert not any(c[0] == "nsenter" or "checkpoint" in c for c in runner.calls) and not sender.told


def test_the_targets_wait_for_its_archives_counts_from_the_sources_window_note(tmp_path):
    """Issue 20: a source waiting for its slot (up to windows_timeout) is not a source that gave up."""
    runner = engine_runner(tmp_path, Containers())
    ck = str(tmp_path / "ck")
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=0.4,
                    windows_timeout=30)
    arrive = threading.Timer(0.8, write_arrival, (tmp_path, "shop-db"))  # after wait_timeout: the source waited
    arrive.start()
    with pytest.raises(window.WindowError, match="no container named 'shop-db'"):  # the fake restores nothing
        a.restored()
    arrive.join()
    assert [c for c in runner.calls if c[1:3] == ["container", "restore"]]  # the archive came, and was restored
    # Once the source said it has its window, wait_timeout counts from then.
    protocol.write_note(ck, "shop", "window", "r2")
    start = time.time()
    b = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=0.4,
                    windows_timeout=30)
    b.run_id = "r2"
    with pytest.raises(window.WindowError, match=r"did not arrive within 0.4 s of the source's window"):
        b.restored()
    assert time.time() - start < 2


def test_a_source_gives_its_slot_back_the_moment_its_targets_serve_without_waiting_for_the_controller(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    sender = Sender()
    sender.on_targets = threading.Event()
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender, windows=1, windows_timeout=5)
    a.slot_dir = str(tmp_path / "windows")
    threading.Timer(0.5, sender.on_targets.set).start()  # the target lifts its fence; no note here ever
    start = time.time()
    events = a.checkpointed()
    assert 0.45 < time.time() - start < 1.5
    assert events[-1]["step"] == "window_given_back" and events[-1]["note"] == "commit"
    assert events[-1]["seen_on"] == "targets"


def test_a_rollbacks_abort_note_ends_the_hold_at_once_while_the_targets_are_asked(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    sender = Sender()  # each look on the targets takes its full second: they never serve
    a = make_window(window_source.SourceWindow, tmp_path, engine_runner(tmp_path, containers), sender=sender,
                    windows=1, windows_timeout=5)
    a.slot_dir = str(tmp_path / "windows")

    def abort_when_sent():
        while len(sender.sent) < 3:
            time.sleep(0.02)
        protocol.write_note(str(tmp_path / "ck"), "shop", "abort", "r1", "rolled back")
        abort_when_sent.at = time.time()
    threading.Thread(target=abort_when_sent).start()
    events = a.checkpointed()
    assert events[-1]["step"] == "window_given_back" and events[-1]["note"] == "abort"
    assert events[-1]["t"] - abort_when_sent.at < 0.5


def test_after_a_wait_for_a_slot_a_restarted_container_stops_the_window_before_any_fence(tmp_path):
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    fake_proc(tmp_path, containers)
    slot_dir = str(tmp_path / "windows")
    go = threading.Event()
    another_stack_in_its_window(slot_dir, lambda: go.wait(5))
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=Sender(), windows=1, windows_timeout=5)
    a.slot_dir = slot_dir

    def restart_then_free():
        time.sleep(0.3)
        fake_proc(tmp_path, containers, start=2000, only=["shop-cache"])  # the same PID, a new process
        go.set()
    threading.Thread(target=restart_then_free).start()
    inspected = len([c for c in runner.calls if "inspect" in c])
    with pytest.raises(window.WindowError, match="service cache: container 'shop-cache' stopped or restarted while"):
        a.checkpointed()
    assert not any(c[0] == "nsenter" for c in runner.calls)  # nothing fenced
    assert len([c for c in runner.calls if "inspect" in c]) == inspected + 1  # check()'s own; none after the wait


@pytest.mark.parametrize("keep", [False, True])
def test_the_commit_lifts_the_fence_then_the_archives_received_go_unless_kept(tmp_path, keep):
    runner = engine_runner(tmp_path, Containers(**{"shop-db": "running"}))
    write_arrival(tmp_path, "shop-db")
    marker = Journal(str(tmp_path / "ck" / "shop.journal"))
    marker.append("ready", run="r1", service="db")
    events = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}).serving(keep_archives=keep)
    assert [e["step"] for e in events] == ["committed"]
    assert [c for c in runner.calls if c[0] == "nft" or "nft" in c]  # the host fence went
    left = sorted(p.name for p in run_dir(tmp_path).iterdir()) if keep else run_dir(tmp_path).exists()
    assert left == (["shop-db.tar.zst", "shop-db.tar.zst.stacklift.json"] if keep else False)


def test_a_ready_target_waits_fenced_for_the_commit_note_of_its_run_and_commits_itself(tmp_path):
    runner = engine_runner(tmp_path, Containers(**{"shop-db": "running"}))
    ck = str(tmp_path / "ck")
    Journal(os.path.join(ck, "shop.journal")).append("ready", run="r1", service="db")

    def note(kind, run, after):
        def write():
            time.sleep(after)
            protocol.write_note(ck, "shop", kind, run)
        threading.Thread(target=write).start()
    # another run's commit is not ours; ours comes a moment later
    protocol.write_note(ck, "shop", "commit", "r0")
    note("commit", "r1", 0.3)
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=5)
    start = time.time()
    a._await_commit(keep_archives=False)
    assert time.time() - start > 0.25 and [e["step"] for e in a.events] == ["committed"]
    assert not os.path.exists(os.path.join(ck, "shop.ready")) and not os.path.exists(os.path.join(ck, "shop.commit"))
    # A rollback's note instead: it ends, the copies fenced; no note at all: it gives up at its timeout.
    Journal(os.path.join(ck, "shop.journal")).append("ready", run="r2", service="db")
    note("abort", "r2", 0.1)
    b = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=5)
    b.run_id = "r2"
    with pytest.raises(window.WindowError, match="not committed"):
        b._await_commit(keep_archives=False)
    assert not b.events
    c = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=0.2)
    c.run_id = "r3"
    with pytest.raises(window.WindowError, match="no commit came within 0.2 s of the copies being ready; they stay fenced"):
        c._await_commit(keep_archives=False)
