"""The note and marker protocol: the shell look for the commit, and notes that never follow a symlink."""

import subprocess
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import protocol
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal


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
