"""The window's source side: fence, checkpoint, send, its window slot, its rollback; only the engine's and nft's
commands faked."""

import json
import os
import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences, protocol, slots
from ansible_collections.stacklift.migrate.plugins.module_utils._window import base as window
from ansible_collections.stacklift.migrate.plugins.module_utils._window import source as window_source
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import sha256_file
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal, fold
from ansible_collections.stacklift.migrate.tests.unit.fakes import PRESENT, write_dump
from ansible_collections.stacklift.migrate.tests.unit.plugins.module_utils._window.window_fakes import (
    Containers, SERVICES, Sender, engine_runner, make_window, nft_scripts, run_dir)


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
    # each namespace's ICMP limit read (to be lifted) once the cut is made, not between two fences
    limits = [i for i, c in enumerate(calls) if c.startswith("nsenter") and c.endswith("cat " + fences.ICMP_RATELIMIT)]
    fenced = [i for i, c in enumerate(calls) if c.startswith("nsenter") and c.endswith("-f -")]
    assert len(limits) == 3 and max(fenced) < min(limits) < first_ckpt
    state = fold(Journal(str(tmp_path / "ck" / "shop.journal")).records("r1"))
    assert all({"fenced", "checkpointed", "sent"} <= set(s) for s in state["services"].values())
    # Called again for the same run, nothing is done twice.
    sender.sent.clear()
    again = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender)
    again.checkpointed()
    assert sender.sent == [] and len([c for c in runner.calls if "checkpoint" in c]) == 3


def test_the_fenced_containers_addresses_answer_their_clients_from_the_cut_until_the_clean_up_lifts_the_host_fence(
        tmp_path):
    """From its checkpoint to the traffic switch a stopped container's address met silence here (no neighbour), and
    its clients' retransmission backoff doubled through it: the host fence answers with host-unreachable instead,
    raised once the cut is made, before the first checkpoint (raised after each, it left a gap between the
    container's namespace going and its address being answered)."""
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=Sender())
    scripts = nft_scripts(a.host, runner)
    told, tell = [], a.sender.tell
    a.sender.tell = lambda kind, msg=None: (told.append((kind, msg)), tell(kind, msg))
    a.checkpointed()
    # the targets are told the addresses before the fence, to answer for them as soon as the traffic may come
    assert told[0] == ("window", ["10.89.10.%d" % containers.pid(n) for n in ("shop-app", "shop-cache", "shop-db")])
    calls = [" ".join(c) for c in runner.calls]
    first_checkpoint = min(i for i, c in enumerate(calls) if "container checkpoint" in c)
    last_fence = max(i for i, c in enumerate(calls) if c.startswith("nsenter") and "nft -f -" in c)
    for name in ("shop-db", "shop-cache", "shop-app"):
        element = "add element netdev stacklift_shop v4 { 10.89.10.%d }" % containers.pid(name)
        assert any(last_fence < at <= first_checkpoint and element in data for at, data in scripts), (name, scripts)
    # then the "cut" note: the controller may send the traffic to the target (stacklift_traffic_switch_at: cut)
    assert protocol.read_note(a.archive_dir, "shop", "cut", a.run_id) == ""
    assert fences.ESTABLISHED_REJECT in scripts[0][1]  # the host fence itself, raised by the first
    assert not any(c.startswith("nft delete table") for c in calls)  # until the commit's clean-up
    a.absent()
    assert {c for c in (" ".join(c) for c in runner.calls) if c.startswith("nft delete table ")} == {
        "nft delete table inet stacklift_shop", "nft delete table bridge stacklift_shop",
        "nft delete table netdev stacklift_shop"}


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
    assert {c for c in calls if c.startswith("nft delete table ")} == {
        "nft delete table %s stacklift_shop" % f for f in ("inet", "bridge", "netdev")}
    assert not [c for c in runner.calls if c[:2] == ["podman", "rm"]]


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


def split_source(tmp_path, monkeypatch, split_error=None, memory="lazy"):
    """A source whose cache is lazy, with the runtime wrapper standing in: its checkpoint leaves the outcome of
    a split (SPLIT_ERROR, else a split) where the wrapper would."""
    containers = Containers(**{"shop-cache": "running"})
    containers.ids["shop-cache"] = "cd" * 32
    runner = engine_runner(tmp_path, containers)
    requests = tmp_path / "lazy"
    checkpoint = runner.answers["podman container checkpoint"]

    def wrapped(argv):  # as the wrapper: a split only when one was asked for, before the checkpoint
        if not (requests / ("cd" * 32 + ".pages")).exists():
            return checkpoint(argv)
        runner.scratch = (requests / ("cd" * 32 + ".pages")).read_text()
        out = split_error and {"error": split_error} or {"pids": [1], "lazy_bytes": 4096, "image_dir": "/ck/checkpoint"}
        (requests / ("cd" * 32 + ".split")).write_text(json.dumps(out) + "\n")
        return checkpoint(argv)
    runner.answers["podman container checkpoint"] = wrapped
    monkeypatch.setattr(window_source.lazy, "lazy_problem", lambda engine, runtime: None)
    sender = Sender()
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender,
                    services={"cache": dict(SERVICES["cache"], memory=memory)}, windows_timeout=5)
    a.lazy_requests = str(requests)
    a.host.proc = str(tmp_path / "proc")
    return a, sender, containers


def test_a_lazy_service_is_split_and_its_source_serves_until_the_target_took_every_page(tmp_path, monkeypatch):
    a, sender, _containers = split_source(tmp_path, monkeypatch)
    protocol.write_note(a.archive_dir, "shop", "commit", "r1")
    done = threading.Timer(0.5, lambda: sender.served.update(cache={"pages": 1, "requests": 1, "seconds": 0.1}))
    done.start()
    start = time.time()
    events = a.checkpointed()
    assert sender.pages["cache"] == {"pids": [1], "lazy_bytes": 4096, "image_dir": "/ck/checkpoint"}
    assert time.time() - start >= 0.4 and [e["step"] for e in events][-2:] == ["window_given_back", "pages_served"]
    assert a.state["services"]["cache"]["checkpointed"]["pages"]["image_dir"] == "/ck/checkpoint"
    assert not os.listdir(str(tmp_path / "lazy"))  # the request and its outcome are gone


def test_a_split_checkpoint_is_written_into_memory_where_it_fits_and_its_pages_go_once_served(tmp_path, monkeypatch):
    a, sender, containers = split_source(tmp_path, monkeypatch)
    pid = containers.pid("shop-cache")
    monkeypatch.setattr(a.host, "container_memory_bytes", lambda p: 512 << 20 if p == pid else 0)
    monkeypatch.setattr(a.host, "scratch_for", lambda need: "/dev/shm/stacklift-pages" if need == 512 << 20 else "")
    discarded = []
    monkeypatch.setattr(window_source, "discard", discarded.append)
    protocol.write_note(a.archive_dir, "shop", "commit", "r1")
    sender.served["cache"] = {"pages": 1, "requests": 1, "seconds": 0.1}
    a.checkpointed()
    assert a.engine.runner.scratch == "/dev/shm/stacklift-pages" and discarded == ["/ck/checkpoint"]


def test_a_split_that_failed_sends_the_whole_archive(tmp_path, monkeypatch):
    a, sender, _containers = split_source(tmp_path, monkeypatch, split_error="cannot split: odd pagemap")
    a.checkpointed()
    assert "cache" not in sender.pages and a.state["services"]["cache"]["split_failed"]["detail"] == \
        "cannot split: odd pagemap"


def staging_source(tmp_path, monkeypatch):
    """A source whose db's container changed 3 MiB of files (its upper directory), and goes on writing one block of
    them until it is checkpointed."""
    containers = Containers(**{"shop-db": "running"})
    upper = tmp_path / "upper"
    (upper / "data").mkdir(parents=True)
    (upper / "data/table").write_bytes(b"a" * (3 << 20))
    containers.upper["shop-db"] = str(upper)
    runner = engine_runner(tmp_path, containers)
    checkpoint = runner.answers["podman container checkpoint"]

    def writes_until_frozen(argv):
        runner.checkpoint_argv = argv
        with open(str(upper / "data/table"), "r+b") as f:
            f.seek((2 << 20) + 5)
            f.write(b"B")
        return checkpoint(argv)
    runner.answers["podman container checkpoint"] = writes_until_frozen
    monkeypatch.setattr(window_source.lazy, "lazy_problem", lambda engine, runtime: None)
    monkeypatch.setattr(window_source.tree, "STAGE_BYTES", 1 << 20)
    sender = Sender()
    sender.target_root = str(tmp_path / "target")
    a = make_window(window_source.SourceWindow, tmp_path, runner, sender=sender, services={"db": SERVICES["db"]})
    return a, sender, upper, containers


def test_large_changed_files_are_staged_before_the_fence_and_only_the_blocks_written_since_sent_in_the_pause(
        tmp_path, monkeypatch):
    a, sender, upper, _containers = staging_source(tmp_path, monkeypatch)
    events = a.checkpointed()
    steps = [e["step"] for e in events]
    assert steps.index("files_staged") < steps.index("fenced") and "--ignore-rootfs" in a.engine.runner.checkpoint_argv
    assert sender.staged == [("db", 3 << 20), ("db", 1 << 20)]  # all of them, then the one block written since
    files = sender.files["db"]
    assert [t["stage"] for t in files["trees"]] == [a.archive("db") + ".files/rootfs"] and files["synced_bytes"] == 1 << 20
    staged = tmp_path / "target" / (a.archive("db").lstrip("/") + ".files/rootfs")
    assert (staged / "tree/data/table").read_bytes() == (upper / "data/table").read_bytes()
    assert files["trees"][0]["digest"] == tree.digest_of(json.loads((staged / "manifest.json").read_text())["entries"])
    assert a.state["services"]["db"]["checkpointed"]["files"] == files  # a resumed window sends the same


def test_a_named_volume_is_staged_whole_and_left_out_of_the_archive_with_the_rootfs(tmp_path, monkeypatch):
    a, sender, _upper, containers = staging_source(tmp_path, monkeypatch)
    volume = tmp_path / "volumes/pgdata/_data"
    (volume / "base").mkdir(parents=True)
    (volume / "base/1").write_bytes(b"v" * 1000)
    containers.mounts["shop-db"] = [
        {"Type": "volume", "Name": "pgdata", "Source": str(volume), "Destination": "/var/lib/pg"},
        {"Type": "bind", "Source": "/etc/hosts", "Destination": "/etc/hosts"}]
    a.checkpointed()
    argv = a.engine.runner.checkpoint_argv
    assert "--ignore-rootfs" in argv and "--ignore-volumes" in argv
    files = sender.files["db"]
    made = str(tmp_path / "target/volumes/pgdata")  # the volume made on the target, filled where it is
    trees = [(t["into"], t["exact"], t["in_place"]) for t in files["trees"]]
    assert trees == [("/", False, None), ("/var/lib/pg", True, made)]
    assert files["volumes"] == ["pgdata"] and a.state["services"]["db"]["files_staged"]["trees"] == [
        "rootfs", "volume-pgdata"]
    assert (tmp_path / "target/volumes/pgdata/base/1").read_bytes() == b"v" * 1000
    staged = tmp_path / "target" / (a.archive("db").lstrip("/") + ".files/volume-pgdata")
    assert sorted(os.listdir(str(staged))) == ["made", "manifest.json"]


def test_files_are_not_staged_where_archives_are_encrypted_at_rest(tmp_path, monkeypatch):
    a, sender, _upper, _containers = staging_source(tmp_path, monkeypatch)
    a.encryption_key = b"k" * 32
    assert a.file_trees("db", a.engine.container("shop-db")) == {}
    a.encryption_key = None
    assert list(a.file_trees("db", a.engine.container("shop-db"))) == ["rootfs"]


def test_files_that_cannot_be_staged_cross_in_the_archive(tmp_path, monkeypatch):
    a, sender, _upper, _containers = staging_source(tmp_path, monkeypatch)
    sender.stage_error = "no route to the target's helper"
    a.checkpointed()
    assert "--ignore-rootfs" not in a.engine.runner.checkpoint_argv and "db" not in sender.files
    assert a.state["services"]["db"]["files_not_staged"]["detail"] == "no route to the target's helper"
    assert sender.dropped == [a.archive("db") + ".files"]  # what it made there goes before the archive comes


def test_pages_never_taken_fail_the_source_and_stay(tmp_path, monkeypatch):
    a, _sender, _containers = split_source(tmp_path, monkeypatch)
    a.windows_timeout = 0.3
    protocol.write_note(a.archive_dir, "shop", "commit", "r1")
    with pytest.raises(window.WindowError, match="cache: its target has not taken all of its memory's pages; they "
                                                 "stay on this host .*/ck/checkpoint"):
        a.checkpointed()


@pytest.mark.parametrize("rss_kib, split", [(255 * 1024, False), (256 * 1024, True)])
def test_auto_splits_a_service_of_256_mib_or_more(tmp_path, monkeypatch, rss_kib, split):
    a, sender, containers = split_source(tmp_path, monkeypatch, memory="auto")
    status = tmp_path / "proc" / str(containers.pid("shop-cache")) / "status"
    status.parent.mkdir(parents=True)
    status.write_text("Name:\tredis-server\nVmRSS:\t%d kB\n" % rss_kib)
    protocol.write_note(a.archive_dir, "shop", "commit", "r1")
    sender.served["cache"] = {"pages": 1, "requests": 1, "seconds": 0.1}
    a.checkpointed()
    assert ("cache" in sender.pages) is split and bool(a.split_services()) is split


def pre_copying_source(tmp_path, monkeypatch, memory="precopy+lazy", tracks=True, fail=False):
    """A source whose cache is split (split_source), on a kernel that tracks written pages (TRACKS) or not, its
    runc's pre-dump writing 4 MiB (or failing, FAIL)."""
    a, sender, containers = split_source(tmp_path, monkeypatch, memory=memory)
    runner = a.engine.runner
    monkeypatch.setattr(fences.lazy, "real_runc", lambda: "/usr/bin/runc")
    a.host.pre_copy_dir = str(tmp_path / "pre")
    runner.answers["criu check --feature mem_dirty_track"] = (0, "", "") if tracks else (
        1, "", "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n")

    def predump(argv):
        if fail:
            return 1, "", "criu failed: type PRE_DUMP errno 0"
        write_dump(argv[argv.index("--image-path") + 1], [(0x400000, 1024, PRESENT)], pid=1)
        return 0, "", ""
    runner.answers["runc checkpoint --pre-dump"] = predump
    checkpoint = runner.answers["podman container checkpoint"]

    def wrapped(argv):  # what the wrapper read: the pre-dump to continue
        parent = tmp_path / "lazy" / ("cd" * 32 + ".parent")
        runner.parent = parent.read_text() if parent.exists() else None
        return checkpoint(argv)
    runner.answers["podman container checkpoint"] = wrapped
    protocol.write_note(a.archive_dir, "shop", "commit", "r1")
    sender.served["cache"] = {"pages": 1, "requests": 1, "seconds": 0.1}
    return a, runner


def test_a_pre_copied_checkpoint_continues_the_pre_dumps_made_before_the_fence(tmp_path, monkeypatch):
    a, runner = pre_copying_source(tmp_path, monkeypatch)
    a.checkpointed()
    calls = [" ".join(c) for c in runner.calls]
    predump = next(i for i, c in enumerate(calls) if "--pre-dump" in c)
    fence = next(i for i, c in enumerate(calls) if c.startswith("nsenter") and "-f -" in c)
    assert predump < fence  # while the cache still served
    rec = a.state["services"]["cache"]["pre_copied"]
    assert rec["rounds"][0]["bytes"] == 4 << 20 and rec["stopped"].startswith("converged") and rec["error"] is None
    assert runner.parent == str(tmp_path / "pre" / ("cd" * 32) / "1")
    assert not os.listdir(str(tmp_path / "lazy"))  # the requests are gone with the checkpoint


def test_a_pre_copy_that_fails_leaves_a_whole_lazy_checkpoint(tmp_path, monkeypatch):
    a, runner = pre_copying_source(tmp_path, monkeypatch, fail=True)
    a.checkpointed()
    rec = a.state["services"]["cache"]
    assert rec["pre_copied"]["error"].startswith("round 1: runc checkpoint --pre-dump failed (1)")
    assert runner.parent is None and rec["checkpointed"]["pages"]  # split, served from the source as lazy is


def test_precopy_where_the_kernel_does_not_track_written_pages_is_refused_before_the_fence(tmp_path, monkeypatch):
    a, runner = pre_copying_source(tmp_path, monkeypatch, tracks=False)
    with pytest.raises(window.WindowError, match="service cache: memory precopy\\+lazy: this kernel does not track "
                                                 "the pages written to \\(CONFIG_MEM_SOFT_DIRTY"):
        a.checkpointed()
    assert not [c for c in runner.calls if c[0] == "nsenter" or "checkpoint" in c]


def test_auto_pre_copies_only_where_the_kernel_tracks_written_pages(tmp_path, monkeypatch):
    for tracks in (False, True):
        d = tmp_path / str(tracks)
        d.mkdir()
        a, runner = pre_copying_source(d, monkeypatch, memory="auto", tracks=tracks)
        monkeypatch.setattr(a.host, "memory_bytes", lambda pid: 512 << 20)
        a.checkpointed()
        assert ("pre_copied" in a.state["services"]["cache"]) is tracks and a.split_services(), tracks
        assert (runner.parent is not None) is tracks
