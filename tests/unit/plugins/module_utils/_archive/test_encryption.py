"""Archives encrypted at rest: the plaintext comes back only whole, unaltered and with the key."""

import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import encryption as crypt


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(os.urandom(10000) + b"the stack's memory" * 300)
    return path


def encrypted(plain, tmp_path, chunk=4096):
    dest = tmp_path / "a.tar.enc"
    crypt.encrypt_file(str(plain), str(dest), "vaulted passphrase", chunk=chunk)
    return dest


def test_round_trip_over_many_chunks_and_private_files(plain, tmp_path):
    enc = encrypted(plain, tmp_path)
    assert crypt.is_encrypted(str(enc)) and not crypt.is_encrypted(str(plain))
    assert b"the stack's memory" not in enc.read_bytes()
    assert os.stat(str(enc)).st_mode & 0o777 == 0o600
    out = tmp_path / "out.tar"
    crypt.decrypt_file(str(enc), str(out), "vaulted passphrase")
    assert out.read_bytes() == plain.read_bytes() and os.stat(str(out)).st_mode & 0o777 == 0o600
    reader = crypt.DecryptingReader(str(enc), "vaulted passphrase")
    assert reader.read(7) + reader.read() == plain.read_bytes()


@pytest.mark.parametrize("damage", ["flip", "cut", "drop_middle", "wrong_key", "append"])
def test_a_tampered_or_cut_archive_or_a_wrong_key_is_refused(plain, tmp_path, damage):
    enc = encrypted(plain, tmp_path)
    data = bytearray(enc.read_bytes())
    head = len(crypt.MAGIC) + 27
    size = 4096 + crypt.TAG
    key = "vaulted passphrase"
    if damage == "flip":
        data[head + 5000] ^= 1
    elif damage == "cut":
        del data[head + 2 * size:]
    elif damage == "drop_middle":
        del data[head + size:head + 2 * size]
    elif damage == "append":
        data += data[head:head + size]
    else:
        key = "another"
    enc.write_bytes(bytes(data))
    out = tmp_path / "out.tar"
    with pytest.raises(crypt.CryptError, match="does not decrypt"):
        crypt.decrypt_file(str(enc), str(out), key)
    assert not out.exists()


def test_plaintext_gives_a_private_copy_for_the_block_only_that_never_has_a_name(plain, tmp_path):
    enc = encrypted(plain, tmp_path)
    before = set(os.listdir(tmp_path))
    with crypt.plaintext(str(enc), "vaulted passphrase") as path:
        assert path.startswith("/proc/%d/fd/" % os.getpid()) and open(path, "rb").read() == plain.read_bytes()
        assert set(os.listdir(tmp_path)) == before  # nothing with a name: a SIGKILL leaves no plaintext
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert not os.path.exists(path)
    with crypt.plaintext(str(plain), None) as path:
        assert path == str(plain)
    with pytest.raises(crypt.CryptError, match="give the key"):
        with crypt.plaintext(str(enc), None):
            pass


def test_with_a_key_an_unencrypted_archive_is_refused(plain):
    """Issue 20: encryption means encrypted; an archive that was not made with the key is not restored."""
    with pytest.raises(crypt.CryptError, match="is not encrypted, but an encryption key is set"):
        with crypt.plaintext(str(plain), "vaulted passphrase"):
            pass


def test_a_killed_decryption_leaves_no_plaintext(plain, tmp_path):
    import signal
    import subprocess
    import sys
    enc = encrypted(plain, tmp_path)
    code = ("import sys, time; sys.path[:0] = %r\n"
            "from ansible_collections.stacklift.migrate.plugins.module_utils._archive import encryption as c\n"
            "with c.plaintext(%r, 'vaulted passphrase') as p:\n    print(p, flush=True); time.sleep(60)\n"
            % (sys.path, str(enc)))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    assert open(path, "rb").read() == plain.read_bytes()  # the engine reads it by this path
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.enc"]


def test_an_encrypted_zstd_archive_reads_through_its_nameless_plaintext(tmp_path):
    """Found on the lab: zstd skips a path that is a symlink, as /proc/PID/fd/N is; it reads the archive
    on its stdin."""
    from ansible_collections.stacklift.migrate.plugins.module_utils._archive.facts import read_archive
    from ansible_collections.stacklift.migrate.tests.unit.fakes import make_archive
    archive = make_archive(tmp_path / "cache.tar.zst", "zstd")
    enc = tmp_path / "cache.tar.zst.enc"
    crypt.encrypt_file(archive, str(enc), "vaulted passphrase")
    with crypt.plaintext(str(enc), "vaulted passphrase") as path:
        info = read_archive(path, original=str(enc))
    assert info["tcp_connections_saved"] == 2 and info["sizes"]["memory_pages"] == 4096
