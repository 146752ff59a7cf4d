"""The window's target side: archives of its run only, restore behind the fence, probes, commit, rollback; only
commands faked."""

import json
import os
import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import protocol
from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences
from ansible_collections.stacklift.migrate.plugins.module_utils._window import base as window
from ansible_collections.stacklift.migrate.plugins.module_utils._window import source as window_source
from ansible_collections.stacklift.migrate.plugins.module_utils._window import target as window_target
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import sha256_file, write_manifest
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import lazy
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal, fold
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, make_archive
from ansible_collections.stacklift.migrate.tests.unit.plugins.module_utils._window.window_fakes import (
    Containers, SERVICES, Sender, engine_runner, make_window, nft_scripts, run_dir)


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


def test_a_target_rollback_removes_a_volume_staged_for_the_run_whose_archive_never_came(tmp_path):
    runner = engine_runner(tmp_path, Containers())
    runner.answers["podman volume rm"] = (0, "", "")
    stage = run_dir(tmp_path) / "shop-db.tar.zst.files" / "volume-pgdata"
    stage.mkdir(parents=True)
    (stage / "made").write_text("pgdata\n")  # the source's staging made it; the pause never got to the archive
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]})
    a.absent()
    assert ["podman", "volume", "rm", "--", "pgdata"] in runner.calls and not stage.exists()


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


def test_the_addresses_the_sources_window_note_names_are_fenced_before_their_archives_come(tmp_path):
    """With the traffic switched at the cut, clients come here while the checkpoints are still written: their
    containers' addresses must be answered from the source's window note on, not once each archive arrived."""
    runner = engine_runner(tmp_path, Containers())
    ck = str(tmp_path / "ck")
    protocol.write_note(ck, "shop", "window", "r1", ["10.89.10.9", "fd00::9", "not an address; flush ruleset", 7])
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=5)
    scripts = nft_scripts(a.host, runner)
    arrive = threading.Timer(0.5, write_arrival, (tmp_path, "shop-db"))
    arrive.start()
    with pytest.raises(window.WindowError, match="no container named 'shop-db'"):  # the fake restores nothing
        a.restored()
    arrive.join()
    restore = next(i for i, c in enumerate(runner.calls) if c[1:3] == ["container", "restore"])
    early = [data for at, data in scripts if at < restore and "add element" in data]
    assert early and "add element netdev stacklift_shop v4 { 10.89.10.9 }" in early[0]
    assert "v6 { fd00::9 }" in early[0] and "flush" not in early[0] and "7" not in early[0].replace("10.89", "")
    assert a.announced == ["10.89.10.9", "fd00::9"]


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


CID = "ab" * 32


def lazy_target(tmp_path, rc, held=1):
    """A target whose db was restored lazily by run r1, its fill ended with RC (None: still filling), its keeper
    holding HELD of its daemon's one userfaultfd (None: no keeper)."""
    runner = engine_runner(tmp_path, Containers(**{"shop-db": "running"}))
    write_arrival(tmp_path, "shop-db")
    marker = Journal(str(tmp_path / "ck" / "shop.journal"))
    marker.append("restored", run="r1", service="db", container_id=CID, memory="lazy")
    marker.append("ready", run="r1", service="db")
    requests = tmp_path / "lazy"
    requests.mkdir()
    (requests / (CID + ".pid")).write_text("%d\n" % os.getpid())
    if rc is not None:
        (requests / (CID + ".rc")).write_text("%d\n" % rc)
        (requests / (CID + ".log")).write_text("uffd: 1-8: the last words\n")
    if held is not None:
        (requests / (CID + ".kept")).write_text(json.dumps({"held": held, "expected": 1}))
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}, wait_timeout=1)
    a.lazy_requests = str(requests)
    return a, runner


@pytest.mark.parametrize("held, why", [(None, "no keeper holds its fill's userfaultfds: keep: EPERM"),
                                       (0, "its keeper holds 0 of the 1 userfaultfds of its fill"), (1, None)])
def test_a_copy_still_filling_is_ready_only_with_a_second_holder_of_its_userfaultfds(tmp_path, held, why):
    a, _runner = lazy_target(tmp_path, None, held=held)
    (tmp_path / "lazy" / (CID + ".keep.log")).write_text("keep: EPERM\n")
    assert a._fill_failures(["db"], held=True) == (["db: %s" % why] if why else [])  # what its probe asks
    (tmp_path / "lazy" / (CID + ".rc")).write_text("0\n")  # the fill ended before the keeper took them: no matter
    assert a._fill_failures(["db"], held=True) == []


def test_a_copy_whose_lazy_fill_died_is_never_committed(tmp_path):
    a, runner = lazy_target(tmp_path, 137)
    with pytest.raises(window.WindowError, match="cannot commit: db: its memory was not filled in .criu lazy-pages "
                                                 "exited 137: uffd: 1-8: the last words"):
        a.serving()
    assert not a.committed() and not [c for c in runner.calls if "delete" in c]  # the fence stays up


def test_after_the_commit_the_fill_is_awaited_and_its_end_recorded(tmp_path):
    a, _runner = lazy_target(tmp_path, 0)
    events = a.serving()
    assert [e["step"] for e in events] == ["committed", "resident"]
    assert events[1]["started"] == a.state["services"]["db"]["restored"]["t"]
    (tmp_path / "b").mkdir()
    b, _runner = lazy_target(tmp_path / "b", None)  # still filling when the wait ends: the archives stay
    with pytest.raises(window.WindowError, match="still being filled in 1 s after the commit"):
        b.serving()
    assert b.committed() and os.path.exists(b.archive("db"))


@pytest.mark.parametrize("finish, problem", [
    ({"state": "done", "pages": 9, "seconds": 0.5}, None),
    ({"state": "failed", "detail": "the source's page server did not take the fill's connection"},
     "its keeper could not finish it: the source's page server did not take")])
def test_after_the_commit_a_fill_whose_daemon_died_is_finished_by_its_keeper_or_named(tmp_path, finish, problem):
    a, _runner = lazy_target(tmp_path, 137)
    a.state["services"]["db"]["restored"] = dict(a.state["services"]["db"].get("restored") or {}, t=1.0)
    path = tmp_path / "lazy" / (CID + ".finish")
    path.write_text(json.dumps({"state": "finishing"}))
    threading.Timer(0.3, lambda: path.write_text(json.dumps(finish))).start()  # while the wait goes on
    problems = a._await_resident(5)
    if problem:
        assert len(problems) == 1 and problem in problems[0] and "exited 137" in problems[0]
        assert not a.done("db", "resident")
    else:
        assert problems == [] and a.done("db", "resident")
        rec = [e for e in a.events if e["step"] == "resident"][0]
        assert rec["finished"] == dict(finish, daemon="criu lazy-pages exited 137: uffd: 1-8: the last words")


@pytest.mark.parametrize("memory", ["lazy", "auto"])
def test_a_lazy_service_on_a_host_without_the_wrapper(tmp_path, memory):
    """lazy is refused where the host cannot (no wrapper here); auto restores eagerly."""
    runner = engine_runner(tmp_path, Containers(**{"shop-cache": "absent"}))
    runner.answers["nft"] = (0, "", "")
    write_arrival(tmp_path, "shop-cache")
    a = make_window(window_target.TargetWindow, tmp_path, runner,
                    services={"cache": dict(SERVICES["cache"], memory=memory)}, wait_timeout=2)
    if memory == "lazy":
        with pytest.raises(window.WindowError, match="memory lazy: stacklift's runtime wrapper is not installed"):
            a._restore("cache")
        assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]
    else:
        a._restore("cache")
        assert a.state["services"]["cache"]["restored"]["memory"] == "eager"


def remote_arrival(tmp_path, memory, monkeypatch, wrapper=True):
    """A target getting a cache whose lazy pages stayed on its source (served at port 40001 here)."""
    runner = engine_runner(tmp_path, Containers(**{"shop-cache": "absent"}))
    runner.answers["nft"] = (0, "", "")
    archive = write_arrival(tmp_path, "shop-cache")
    manifest = json.loads(open(archive + ".stacklift.json").read())
    write_manifest(archive, dict(manifest, container_id=CID, pages={"port": 40001, "token": "0f" * 16, "lazy_bytes": 1 << 30}))
    if wrapper:
        monkeypatch.setattr(window_target.lazy, "lazy_problem", lambda engine, runtime: None)
    a = make_window(window_target.TargetWindow, tmp_path, runner,
                    services={"cache": dict(SERVICES["cache"], memory=memory)}, wait_timeout=2)
    a.lazy_requests = str(tmp_path / "lazy")
    return a, runner


@pytest.mark.parametrize("memory", ["lazy", "auto", "eager"])
def test_an_archive_whose_pages_stayed_on_the_source_is_restored_lazily_from_there(tmp_path, memory, monkeypatch):
    a, runner = remote_arrival(tmp_path, memory, monkeypatch)
    restore, asked = runner.answers["podman container restore"], []
    runner.answers["podman container restore"] = lambda argv: (
        asked.append(open(os.path.join(a.lazy_requests, CID + ".request")).read()), restore(argv))[1]
    a._restore("cache")
    assert asked == ["remote 127.0.0.1 40001 %s\n" % ("0f" * 16)]
    rec = a.state["services"]["cache"]["restored"]
    assert (rec["memory"], rec["pages_from"]) == ("lazy", "source")
    assert not os.path.exists(os.path.join(a.lazy_requests, CID + ".request"))  # for that one restore only


def test_an_archive_whose_pages_stayed_on_the_source_is_refused_where_no_lazy_restore_is_possible(tmp_path, monkeypatch):
    a, runner = remote_arrival(tmp_path, "auto", monkeypatch, wrapper=False)
    with pytest.raises(window.WindowError, match="memory auto: stacklift's runtime wrapper is not installed .*; its "
                                                 "pages stayed on the source, so it restores lazily or not at all"):
        a._restore("cache")
    assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]


def test_an_archive_checked_as_it_arrived_is_not_read_again(tmp_path):
    """The window's push hashed the archive on the target before its rename and says so in the manifest it sends
    (arrived_checked, with the size): the target trusts that; an archive that came otherwise is read whole."""
    containers = Containers(**{"shop-cache": "absent"})
    runner = engine_runner(tmp_path, containers)
    runner.answers["nft"] = (0, "", "")
    archive = write_arrival(tmp_path, "shop-cache")
    manifest = json.loads(open(archive + ".stacklift.json").read())
    write_manifest(archive, dict(manifest, arrived_checked={"sha256": manifest["sha256"], "size": os.path.getsize(archive)}))
    a = make_window(window_target.TargetWindow, tmp_path, runner, services={"cache": SERVICES["cache"]})
    a._restore("cache")
    assert a.state["services"]["cache"]["restored"]["sha256_checked"] == "on arrival"
    # a size that does not match what the push checked: read whole, and refused when damaged
    write_manifest(archive, dict(manifest, arrived_checked={"sha256": manifest["sha256"], "size": 1}))
    with open(archive, "r+b") as f:
        f.seek(10)
        f.write(b"XX")
    (tmp_path / "b").mkdir()  # a window of its own (its journal), on the same archive
    b = make_window(window_target.TargetWindow, tmp_path / "b", runner, services={"cache": SERVICES["cache"]})
    b.archive_dir = a.archive_dir
    with pytest.raises(window.WindowError, match="damaged in transit"):
        b._restore("cache")


def staged_arrival(tmp_path, monkeypatch, problem=None, stage=None):
    """The cache's archive with its files staged beside it (the manifest says where, and their digest); this
    host's wrapper able to apply them unless PROBLEM. Returns the window, the runner, and the requests the
    engine's restore saw."""
    containers = Containers(**{"shop-cache": "absent"})
    runner = engine_runner(tmp_path, containers)
    runner.answers["nft"] = (0, "", "")
    archive = write_arrival(tmp_path, "shop-cache")
    manifest = json.loads(open(archive + ".stacklift.json").read())
    volume = archive + ".files/volume-data"  # filled in place: only its manifest here
    os.makedirs(volume)
    with open(os.path.join(volume, "manifest.json"), "w") as f:
        json.dump({"entries": {}}, f)
    files = {"trees": [{"stage": stage or archive + ".files/rootfs", "digest": "f" * 64, "into": "/", "exact": False},
                       {"stage": volume, "digest": tree.digest_of({}), "into": "/data", "exact": True,
                        "in_place": str(tmp_path / "volumes/data")}],
             "volumes": ["data"], "bytes": 1}
    write_manifest(archive, dict(manifest, container_id=CID, files=files))
    monkeypatch.setattr(window_target.lazy, "files_problem", lambda: problem)
    services = {"cache": dict(SERVICES["cache"], memory="eager")}
    a = make_window(window_target.TargetWindow, tmp_path, runner, services=services)
    a.lazy_requests = str(tmp_path / "lazy")
    seen, restore = [], runner.answers["podman container restore"]

    def restore_seeing_requests(argv):  # what the wrapper would find: the request files, and what the files one asks
        seen.append((sorted(os.listdir(a.lazy_requests)), lazy.read_text(os.path.join(a.lazy_requests, CID + ".files"))))
        return restore(argv)
    runner.answers["podman container restore"] = restore_seeing_requests
    return a, runner, seen


def test_files_staged_before_the_fence_are_asked_of_the_wrapper_for_that_restore_which_leaves_out_the_rootfs(
        tmp_path, monkeypatch):
    a, runner, seen = staged_arrival(tmp_path, monkeypatch)
    a._restore("cache")
    restore = [c for c in runner.calls if c[1:3] == ["container", "restore"]][0]
    assert "--ignore-rootfs" in restore and "--ignore-volumes" in restore and seen[0][0] == [CID + ".files"]
    assert [t["into"] for t in json.loads(seen[0][1])] == ["/"]  # the root's tree only: the volume is in place
    assert os.listdir(a.lazy_requests) == []  # for that one restore only


@pytest.mark.parametrize("problem, stage, why", [
    ("the wrapper cannot apply staged files", None, "the wrapper cannot apply staged files"),
    (None, "/elsewhere.files/rootfs", "they are at /elsewhere.files/rootfs, not beside this archive")])
def test_staged_files_that_cannot_be_put_in_place_refuse_the_restore(tmp_path, monkeypatch, problem, stage, why):
    a, runner, _seen = staged_arrival(tmp_path, monkeypatch, problem=problem, stage=stage)
    with pytest.raises(window.WindowError, match="its files were staged before the fence, and cannot be put in "
                                                 "place: %s" % why):
        a._restore("cache")
    assert not [c for c in runner.calls if c[1:3] == ["container", "restore"]]
