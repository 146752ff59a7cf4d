"""Host-to-host transfers end within the stall limit when the target stops answering."""

import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils import _ssh


class SilentTarget:
    """A connection whose target stopped answering: opening SFTP waits until the connection is closed
    (as paramiko's channel open does while the transport lives)."""

    def __init__(self):
        self.closed = threading.Event()

    def open_sftp(self):
        self.closed.wait(30)
        raise EOFError("the connection was closed")

    def close(self):
        self.closed.set()


def test_a_silent_target_ends_the_push_with_a_clean_error_within_the_stall_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(_ssh, "STALL_TIMEOUT", 0.5)
    monkeypatch.setattr(_ssh, "remote_run", lambda client, cmd, timeout=None: (0, "", ""))
    archive = tmp_path / "db.tar.zst"
    archive.write_bytes(b"x" * 1000)
    target = SilentTarget()
    start = time.time()
    with pytest.raises(_ssh.TransferError, match="stalled for 0.5 s after 0 bytes; the final name was not touched"):
        _ssh.push_file(target, str(archive), "/var/lib/stacklift/checkpoints/db.tar.zst", "0" * 64)
    assert time.time() - start < 5 and target.closed.is_set()


def test_the_watchdog_waits_while_there_is_progress():
    target = SilentTarget()
    dog = _ssh.Watchdog(target, seconds=0.4)
    for _step in range(6):
        time.sleep(0.15)
        dog.touch()
    assert not dog.fired and not target.closed.is_set()
    time.sleep(0.8)
    assert dog.fired and target.closed.is_set()
    dog.stop()
