"""Host-to-host transfers end within the stall limit when the target stops answering."""

import os
import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._transport import ssh as _ssh


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


def run_push_script(tmp_path, data, sha, size=None, delay=0.0, path_dir=None):
    """The target's side of push_file, run here by sh, fed DATA in pieces DELAY apart: (rc, stdout, seconds
    from its last byte to its end)."""
    import subprocess
    final = tmp_path / "ck" / "db.tar.zst"
    script = _ssh.PUSH_SCRIPT.format(d=_ssh.quote(str(final.parent)), t=_ssh.quote(str(final.parent / ".db.part-1")),
                                     f=_ssh.quote(str(final)), sha=_ssh.quote(sha), mode=0o600, dir_mode=0o700,
                                     size=len(data) if size is None else size)
    env = dict(os.environ, PATH="%s:%s" % (path_dir, os.environ["PATH"]) if path_dir else os.environ["PATH"])
    proc = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    for i in range(0, len(data), 1 << 20):
        proc.stdin.write(data[i:i + (1 << 20)])
        proc.stdin.flush()
        time.sleep(delay)
    proc.stdin.close()
    last_byte = time.time()
    out = proc.stdout.read().decode()
    rc = proc.wait()
    return rc, out.strip(), time.time() - last_byte


def test_the_target_digests_an_archive_as_it_arrives_so_a_large_one_is_never_silent_at_its_end(tmp_path):
    """Issue 20: the target read the whole part file back after its last byte, silent for longer than
    its stall limit past ~8-20 GB. A slow disk is simulated by a sha256sum that takes 0.5 s on any file
    it is given by name: the digest must come from the stream (sha256sum never given the file)."""
    import hashlib
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sha256sum").write_text('#!/bin/sh\n[ $# -gt 0 ] && sleep 0.5\nexec /usr/bin/sha256sum "$@"\n')
    (fake / "sha256sum").chmod(0o755)
    data = os.urandom(6 << 20)
    rc, _out, tail = run_push_script(tmp_path, data, hashlib.sha256(data).hexdigest(), delay=0.05, path_dir=fake)
    assert rc == 0 and (tmp_path / "ck" / "db.tar.zst").read_bytes() == data
    assert tail < 0.4, "the target still read the file back after its last byte (%.2f s)" % tail
    assert oct((tmp_path / "ck").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("case", ["digest", "size"])
def test_a_push_that_arrives_damaged_or_short_leaves_nothing_under_either_name(tmp_path, case):
    import hashlib
    data = os.urandom(100000)
    sha = hashlib.sha256(data).hexdigest()
    rc, out, _tail = run_push_script(tmp_path, data, "0" * 64 if case == "digest" else sha,
                                     size=len(data) + 1 if case == "size" else None)
    assert rc == (12 if case == "digest" else 11)
    assert out == (sha if case == "digest" else "")
    assert os.listdir(tmp_path / "ck") == []


def test_an_image_stream_to_a_silent_target_ends_with_a_clean_error_within_the_stall_limit(monkeypatch):
    """Issue 20: image_sync's stream had no stall watchdog; a silent target hung it, and the local
    command feeding it is stopped too."""
    monkeypatch.setattr(_ssh, "STALL_TIMEOUT", 0.5)
    target = SilentTarget()
    start = time.time()
    with pytest.raises(_ssh.TransferError, match="stalled for 0.5 s after 0 bytes"):
        _ssh.stream_to_remote(["sh", "-c", "sleep 30; echo late"], target, "podman load")
    assert time.time() - start < 5 and target.closed.is_set()


class StalledChannel:
    """A target that took the first block and then stopped reading (its window full)."""

    def __init__(self):
        self.closed = threading.Event()
        self.blocks = 0

    def get_transport(self):
        return self

    def open_session(self, timeout=None):
        return self

    def settimeout(self, t):
        pass

    def exec_command(self, cmd):
        pass

    def sendall(self, block):
        self.blocks += 1
        if self.blocks > 1:
            self.closed.wait(30)
            raise EOFError("closed")

    def close(self):
        self.closed.set()


def test_an_image_stream_the_target_stops_reading_ends_within_the_stall_limit(monkeypatch):
    monkeypatch.setattr(_ssh, "STALL_TIMEOUT", 0.5)
    target = StalledChannel()
    start = time.time()
    with pytest.raises(_ssh.TransferError, match=r"stalled for 0.5 s after \d+ bytes"):
        _ssh.stream_to_remote(["head", "-c", "50000000", "/dev/zero"], target, "podman load")
    assert time.time() - start < 5


def test_keys_learned_at_once_by_many_sources_all_land_in_known_hosts(tmp_path):
    """Issue 20: accept_new wrote known_hosts in place; two sources learning keys at once lost one."""
    import paramiko
    known = str(tmp_path / "stacklift" / "known_hosts")
    key = paramiko.RSAKey.generate(1024)
    errors = []

    def learn(i):
        hk = paramiko.HostKeys()
        hk.add("10.0.0.%d" % i, "ssh-rsa", key)
        try:
            _ssh.save_known_hosts(hk, known)
        except Exception as e:  # pylint: disable=broad-except
            errors.append(e)
    threads = [threading.Thread(target=learn, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = paramiko.HostKeys(known)
    assert not errors and sorted(saved.keys()) == sorted("10.0.0.%d" % i for i in range(20))
    assert oct(os.stat(known).st_mode & 0o777) == "0o600"
