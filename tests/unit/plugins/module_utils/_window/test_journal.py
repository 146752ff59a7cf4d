"""The journal and its lock: durable records, the folded state, one run per stack, stale locks."""

import json
import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import journal as j


def test_records_fold_into_the_run_state_and_a_torn_last_line_is_ignored(tmp_path):
    jr = j.Journal(str(tmp_path / "d" / "shop.journal"))
    jr.append("begin", run="r1")
    jr.append("checkpointed", run="r1", service="db", sha256="ab")
    jr.append("begin", run="r2")
    with open(jr.path, "ab") as f:
        f.write(b'{"step": "fenced", "run": "r2", "serv')  # a crash in the middle of a write
    state = j.fold(jr.records("r1"))
    assert state["status"] == "open" and state["services"]["db"]["checkpointed"]["sha256"] == "ab"
    assert not state["committing"]
    assert jr.last_run() == "r2" and j.fold(jr.records("r2"))["services"] == {}
    jr.append("committing", run="r1")
    jr.append("committed", run="r1")
    jr.append("end", run="r1")
    state = j.fold(jr.records("r1"))
    assert state["status"] == "committed" and state["committing"]
    assert oct(os.stat(jr.path).st_mode & 0o777) == "0o600"


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    lock = j.Lock(str(tmp_path / "shop.lock"))
    lock.acquire("r1", pid=os.getpid())
    with pytest.raises(j.LockHeld) as e:
        lock.acquire("r2", pid=os.getppid())
    assert "r1" in str(e.value) and e.value.holder["pid"] == os.getpid()
    # The same controller taking its own lock again (a task re-run in the play) is fine.
    assert lock.acquire("r1", pid=os.getpid()) is None
    assert not lock.release("r2") and lock.release("r1") and lock.holder() is None


def test_a_lock_left_by_a_dead_controller_is_taken_over(tmp_path):
    path = tmp_path / "shop.lock"
    path.write_text(json.dumps({"run": "r1", "pid": 999999999, "pid_start": 1, "host": os.uname()[1]}))
    stale = j.Lock(str(path)).acquire("r1", pid=os.getpid())
    assert stale["pid"] == 999999999 and j.Lock(str(path)).holder()["pid"] == os.getpid()


def test_a_reused_pid_is_not_taken_for_the_holder():
    me = {"pid": os.getpid(), "pid_start": j._proc_start(os.getpid()), "host": os.uname()[1]}
    assert j.holder_alive(me)
    assert not j.holder_alive(dict(me, pid_start=me["pid_start"] + 1))
    assert j.holder_alive(dict(me, host="another-controller"))  # only its owner can tell


def test_the_controller_is_the_outermost_ansible_playbook(monkeypatch):
    # pid 30 is a task's worker (a fork of ansible-playbook, gone after the task); 20 is the controller.
    tree = {40: (30, "python3 AnsiballZ_migration_journal.py"), 30: (20, "ansible-playbook migrate_stack.yml"),
            20: (10, "ansible-playbook migrate_stack.yml"), 10: (1, "bash")}
    monkeypatch.setattr(j, "_cmdline", lambda pid: tree[pid][1])

    class Stat:
        def __init__(self, path, *a):
            self.pid = int(path.split("/")[2])

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return "%d (x) S %d" % (self.pid, tree[self.pid][0])
    monkeypatch.setattr(j, "open", Stat, raising=False)
    assert j.controller_pid(40) == 20


def test_a_lock_from_another_host_lives_by_its_lease():
    """Issue 20: each AWX job runs in a pod with a hostname of its own; a cancelled job's lock must end."""
    other = {"run": "r1", "pid": 7, "pid_start": 1, "host": "awx-job-123"}
    assert j.holder_alive(dict(other, expires=1000.0), now=lambda: 999.0)
    assert not j.holder_alive(dict(other, expires=1000.0), now=lambda: 1001.0)
    assert j.holder_alive(other)  # an older stacklift's lock without a lease: it cannot be told


def stale_lock(path, run="r1"):
    path.write_text(json.dumps({"run": run, "pid": 7, "pid_start": 1, "host": "awx-job-123", "expires": 1.0}))


def test_an_expired_lease_is_taken_over_and_renewed_while_the_controller_lives(tmp_path):
    path = tmp_path / "shop.lock"
    stale_lock(path)
    lock = j.Lock(str(path))
    assert lock.acquire("r2", pid=os.getpid())["host"] == "awx-job-123"
    first = lock.holder()["expires"]
    assert first > 1.0 and lock.renew("r2", os.getpid()) and lock.holder()["expires"] >= first
    assert not lock.renew("r1", os.getpid())  # not its lock
    # the renewer stops by itself once the controller is gone, or the lock is another run's
    ticks = []
    j.renew_while_alive(str(path), "r2", os.getpid(), j._proc_start(os.getpid()) + 1, every=0, sleep=ticks.append)
    assert ticks == [0]
    lock.release("r2")
    j.renew_while_alive(str(path), "r2", os.getpid(), j._proc_start(os.getpid()), every=0, sleep=ticks.append)
    assert ticks == [0, 0] and lock.holder() is None


def _take(path, run, go, out, done):
    go.wait(10)  # all at once
    try:
        j.Lock(path).acquire(run, pid=os.getpid())
        out.put(run)
    except j.LockHeld:
        out.put(None)
    done.wait(10)  # a winner stays alive (a dead one's lock is stale) until every one has tried


def test_two_controllers_breaking_the_same_stale_lock_cannot_both_hold_it(tmp_path):
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    for attempt in range(15):
        path = tmp_path / ("shop-%d.lock" % attempt)
        stale_lock(path)
        out, go, done = ctx.Queue(), ctx.Event(), ctx.Event()
        procs = [ctx.Process(target=_take, args=(str(path), "r%d" % i, go, out, done)) for i in range(4)]
        for p in procs:
            p.start()
        go.set()
        winners = [r for r in (out.get(timeout=10) for _p in procs) if r]
        holder = j.Lock(str(path)).holder()["run"]
        done.set()
        for p in procs:
            p.join(10)
        assert len(winners) == 1 and holder == winners[0], winners


def test_breaking_a_lock_by_hand_checks_that_its_holder_is_gone(tmp_path):
    jdir = tmp_path / "journal"
    jdir.mkdir()
    params = dict(stack="shop", journal_dir=str(jdir), state="break", run_id="r1", records=[], outcome=None)
    (jdir / "shop.lock").write_text(json.dumps({"run": "r1", "pid": 7, "host": "awx-job-123",
                                                "expires": __import__("time").time() + 60}))
    failed, out = j.journal_task(params)
    assert failed and "run r1 is not gone" in out["msg"] and "holds its lease until" in out["msg"]
    failed, out = j.journal_task(dict(params, run_id="r9"))
    assert failed and "held by run r1, not r9" in out["msg"]
    stale_lock(jdir / "shop.lock")
    failed, out = j.journal_task(params)
    assert not failed and not (jdir / "shop.lock").exists()
    assert [r["step"] for r in j.Journal(str(jdir / "shop.journal")).records("r1")] == ["lock_broken"]
    failed, out = j.journal_task(params)
    assert not failed and out["msg"] == "stack shop is not locked"


def test_the_lock_taken_at_begin_starts_its_lease_renewer(tmp_path):
    import signal
    import time
    jdir = tmp_path / "journal"
    params = dict(stack="shop", journal_dir=str(jdir), state="begin", run_id=None, records=[], outcome=None)
    failed, out = j.journal_task(params, pid=os.getpid())
    try:
        assert not failed and out["lease_renewer"] and out["holder"]["expires"] > time.time() + j.LEASE - 5
        for _wait in range(40):  # its exec may not have set its command line yet
            cmd = open("/proc/%d/cmdline" % out["lease_renewer"], "rb").read().split(b"\0")
            if len(cmd) > 2:
                break
            time.sleep(0.05)
        assert cmd[1].endswith(b"journal.py")
        time.sleep(1.0)  # it imported the collection's packages and went on renewing: still there, not a zombie
        with open("/proc/%d/stat" % out["lease_renewer"]) as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in "SR"
        assert cmd[2:5] == [b"renew", str(jdir / "shop.lock").encode(), out["run_id"].encode()]
    finally:
        os.kill(out["lease_renewer"], signal.SIGTERM)


def test_the_journal_says_which_mount_it_lies_on(tmp_path):
    """Issue 20: in an AWX job's container a journal on the root file system is gone with the job."""
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / / rw - overlay overlay rw\n"
                    "30 22 8:1 /awx /var/lib/awx/stacklift rw - ext4 /dev/sda1 rw\n"
                    "31 22 8:1 /x /var/lib/awx\\040data rw - ext4 /dev/sda1 rw\n")
    assert j.mount_point("/runner/journal", str(info)) == "/"
    assert j.mount_point("/var/lib/awx/stacklift/journal", str(info)) == "/var/lib/awx/stacklift"
    assert j.mount_point("/var/lib/awx/stacklift-other", str(info)) == "/"
    assert j.mount_point("/var/lib/awx data/j", str(info)) == "/var/lib/awx data"
