"""Archives encrypted at rest: the plaintext comes back only whole, unaltered and with the key."""

import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils import encryption as crypt


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


def test_plaintext_gives_a_private_copy_for_the_block_only(plain, tmp_path):
    enc = encrypted(plain, tmp_path)
    with crypt.plaintext(str(enc), "vaulted passphrase") as path:
        assert path != str(enc) and open(path, "rb").read() == plain.read_bytes()
    assert not os.path.exists(path)
    with crypt.plaintext(str(plain), None) as path:
        assert path == str(plain)
    with pytest.raises(crypt.CryptError, match="give the key"):
        with crypt.plaintext(str(enc), None):
            pass
