"""Host-to-host transfers end within the stall limit when the target stops answering."""

import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils import _ssh


class SilentTarget:
    """A connection whose target stopped answering: opening a channel waits until the connection is
    closed (as paramiko's channel open does while the transport lives)."""

    def __init__(self):
        self.closed = threading.Event()

    def get_transport(self):
        return self

    def open_session(self, timeout=None):
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


def test_a_target_user_other_than_root_runs_the_targets_side_through_sudo():
    class Client:
        sudo = True
    assert _ssh.as_root(Client(), "cat > '/var/lib/x y'") == "sudo -n sh -c 'cat > '\"'\"'/var/lib/x y'\"'\"''"
    Client.sudo = False
    assert _ssh.as_root(Client(), "mv -f a b") == "mv -f a b"


def test_a_private_key_given_as_text_loads_and_a_wrong_one_says_what_it_is(tmp_path):
    import subprocess
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    loaded = _ssh.load_private_key(key.read_text())
    assert loaded.get_name() == "ssh-ed25519"
    assert loaded.get_base64() == key.with_suffix(".pub").read_text().split()[1]
    with pytest.raises(_ssh.TransferError, match="not an unencrypted Ed25519, ECDSA or RSA private key"):
        _ssh.load_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----")
