"""The journal and its lock: durable records, the folded state, one run per stack, stale locks."""

import json
import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils import journal as j


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
