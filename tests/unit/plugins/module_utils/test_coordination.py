"""A source host's window slots: real lock files, a real second process holding one; the look a
source takes on its target for the commit, with a real shell."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import protocol, slots
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal

HOLDER = """
import sys, time
from ansible_collections.stacklift.migrate.plugins.module_utils._window.slots import window_slot
with window_slot(sys.argv[1], int(sys.argv[2]), 5) as (slot, waited):
    print(slot, flush=True)
    time.sleep(60)
"""


def hold(directory, n):
    """Another call, in its own process, holding one of N slots until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, directory, str(n)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    return proc, int(proc.stdout.readline())


def test_no_limit_takes_no_slot(tmp_path):
    with slots.window_slot(str(tmp_path / "w"), 0, 0) as got:
        assert got == (None, 0.0)
    assert not (tmp_path / "w").exists()


def test_two_slots_let_two_calls_in_and_the_third_waits_until_one_ends_however_it_ends(tmp_path):
    d = str(tmp_path / "w")
    first, slot1 = hold(d, 2)
    second, slot2 = hold(d, 2)
    try:
        assert {slot1, slot2} == {0, 1}
        with pytest.raises(slots.NoSlot, match=r"no window free on this host in 0.3 s \(at most 2 stacks at once"):
            with slots.window_slot(d, 2, 0.3):
                pass
        # The first holder dies without giving its slot back: the kernel does.
        start = time.time()
        first.send_signal(signal.SIGKILL)
        with slots.window_slot(d, 2, 5) as (slot, waited):
            assert slot == slot1 and waited < 2 and time.time() - start < 2
            # held here now: nobody else gets it
            with pytest.raises(slots.NoSlot, match="at most 2 stacks"):
                with slots.window_slot(d, 2, 0.2):
                    pass
        # given back at the end of the block
        with slots.window_slot(d, 2, 0) as (slot, waited):
            assert slot == slot1
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_the_look_for_the_commit_on_a_target_waits_for_a_committed_record_of_its_run_only(tmp_path):
    directory = str(tmp_path)
    cmd = protocol.committed_command(directory, "shop", "r1", wait=0.3)

    def look():
        start = time.time()
        rc = subprocess.run(["sh", "-c", cmd], check=False).returncode
        return rc, time.time() - start
    rc, took = look()  # no marker at all yet
    assert rc == 1 and 0.2 < took < 5
    marker = Journal(protocol.marker_path(directory, "shop"))
    marker.append("committed", run="r0", service="db")  # another run's commit
    marker.append("ready", run="r1", service="db")  # ours is ready, not committed
    assert look()[0] == 1
    marker.append("committed", run="r1", service="db")
    rc, took = look()
    assert rc == 0 and took < 0.2
    # ... and one that comes while it looks is seen within a step
    other = protocol.committed_command(directory, "shop", "r2", wait=3)
    proc = subprocess.Popen(["sh", "-c", other])
    time.sleep(0.3)
    marker.append("committed", run="r2", service="db")
    start = time.time()
    assert proc.wait(timeout=5) == 0 and time.time() - start < 0.5


def test_journals_notes_and_locks_never_follow_a_symlink_at_their_name(tmp_path):
    """Issue 20: a link planted at a journal's, a note's or a lock's name must not redirect a write."""
    import errno
    from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import JournalError, Lock
    victim = tmp_path / "victim"
    victim.write_text("host file")
    ck = tmp_path / "ck"
    ck.mkdir()
    for name in ("shop.journal", "shop.abort", "shop.commit.tmp", "lock"):
        (ck / name).symlink_to(victim)
    with pytest.raises(OSError) as e:
        Journal(str(ck / "shop.journal")).append("fenced", run="r1")
    assert e.value.errno == errno.ELOOP
    assert protocol.read_note(str(ck), "shop", "abort", "r1") is None
    protocol.write_note(str(ck), "shop", "commit", "r1")  # its .tmp link replaced, not written through
    assert protocol.read_note(str(ck), "shop", "commit", "r1") == ""
    with pytest.raises(JournalError, match="is a symlink, not a stacklift lock"):
        Lock(str(ck / "lock")).acquire("r1")
    assert victim.read_text() == "host file"
