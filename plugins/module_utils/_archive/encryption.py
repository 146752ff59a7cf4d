# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Archives encrypted at rest: AES-256-GCM in chunks, authenticated end to end.

A checkpoint archive holds a stack's memory (passwords, session keys, database pages). With a
key (a vaulted variable), the archive that is kept, sent and left behind is this file:

    MAGIC | salt (16) | nonce prefix (7) | chunk size (4) | chunks

Each chunk is AES-GCM over up to ``chunk size`` bytes, with the nonce ``prefix | counter (4) |
last (1)`` and the header as associated data, so a chunk changed, moved, dropped or added, or a
file cut short, fails authentication (the STREAM construction of Hoang, Reyhanitabar, Rogaway
and Vizar). The key is derived from the passphrase with scrypt and a per-file salt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "HAS_CRYPTOGRAPHY", "CRYPTOGRAPHY_IMPORT_ERROR", "MAGIC", "CHUNK", "TAG", "SCRYPT_N", "CryptError",
    "require_for", "is_encrypted", "encrypt_file", "DecryptingReader", "decrypt_into", "decrypt_file",
    "plaintext",
]

import contextlib
import os
import struct
import traceback
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

MAGIC = b"STACKLIFT-AES256GCM-1\n"
CHUNK = 1 << 20
TAG = 16
SCRYPT_N = 1 << 14


class CryptError(StackliftError):
    """An archive could not be encrypted or decrypted (a wrong key, a changed byte)."""


def require_for(module):
    """Fail MODULE, before it does anything, when it is given an encryption_key and this host
    lacks the cryptography library."""
    if module.params.get("encryption_key") and not HAS_CRYPTOGRAPHY:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib("cryptography (encryption_key)"), exception=CRYPTOGRAPHY_IMPORT_ERROR)


def is_encrypted(path):
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _key(passphrase, salt):
    if not HAS_CRYPTOGRAPHY:
        raise CryptError("encrypted archives need the Python library cryptography on this host")
    if not passphrase:
        raise CryptError("an encryption key is needed")
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase.encode("utf-8"))


def _nonce(prefix, counter, last):
    return prefix + struct.pack("!I", counter) + (b"\x01" if last else b"\x00")


def _write_private(path):
    """A new file mode 0600 (never an existing one)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def encrypt_file(src, dest, passphrase, chunk=CHUNK):
    """Write SRC encrypted to DEST (a new file, 0600); returns DEST's size."""
    salt, prefix = os.urandom(16), os.urandom(7)
    header = MAGIC + salt + prefix + struct.pack("!I", chunk)
    aead = AESGCM(_key(passphrase, salt))
    with open(src, "rb") as fin, _write_private(dest) as fout:
        fout.write(header)
        counter = 0
        block = fin.read(chunk)
        while True:
            following = fin.read(chunk) if len(block) == chunk else b""
            last = not following
            fout.write(aead.encrypt(_nonce(prefix, counter, last), block, header))
            if last:
                break
            block, counter = following, counter + 1
        fout.flush()
        os.fsync(fout.fileno())
    return os.path.getsize(dest)


class DecryptingReader:
    """A file-like reader of an encrypted archive's plaintext; raises CryptError when it was altered."""

    def __init__(self, path, passphrase):
        self.f = open(path, "rb")
        header = self.f.read(len(MAGIC) + 16 + 7 + 4)
        if len(header) < len(MAGIC) + 27 or not header.startswith(MAGIC):
            self.f.close()
            raise CryptError("%s is not an archive stacklift encrypted" % path)
        salt = header[len(MAGIC):len(MAGIC) + 16]
        self.prefix = header[len(MAGIC) + 16:len(MAGIC) + 23]
        self.chunk = struct.unpack("!I", header[-4:])[0]
        if not 0 < self.chunk <= 64 << 20:
            self.f.close()
            raise CryptError("%s has a damaged header" % path)
        self.header = header
        self.path = path
        self.aead = AESGCM(_key(passphrase, salt))
        self.counter = 0
        self.buffer = b""
        self.done = False
        self.pending = self.f.read(self.chunk + TAG)

    def _next(self):
        block = self.pending
        self.pending = self.f.read(self.chunk + TAG)
        last = not self.pending
        try:
            plain = self.aead.decrypt(_nonce(self.prefix, self.counter, last), block, self.header)
        except InvalidTag:
            raise CryptError("%s does not decrypt: a wrong key, or the archive was altered or cut short "
                             "(chunk %d)" % (self.path, self.counter))
        self.counter += 1
        self.done = last
        return plain

    def read(self, n=-1):
        while not self.done and (n < 0 or len(self.buffer) < n):
            self.buffer += self._next()
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self):
        self.f.close()


def decrypt_into(src, fout, passphrase):
    """Write SRC's plaintext to the open file FOUT; CryptError when SRC does not decrypt."""
    reader = DecryptingReader(src, passphrase)
    try:
        for block in iter(lambda: reader.read(CHUNK), b""):
            fout.write(block)
        fout.flush()
    finally:
        reader.close()


def decrypt_file(src, dest, passphrase):
    """Write SRC's plaintext to DEST (a new file, 0600). DEST is removed when SRC does not decrypt."""
    try:
        with _write_private(dest) as fout:
            decrypt_into(src, fout, passphrase)
    except BaseException:
        if os.path.exists(dest):
            os.unlink(dest)
        raise


@contextlib.contextmanager
def plaintext(path, passphrase):
    """PATH itself when it is not encrypted (refused when PASSPHRASE is set: a key means the archives are
    encrypted); otherwise its plaintext in a file without a name (O_TMPFILE beside it), given to the
    engine as /proc/PID/fd/N: it is gone when this process ends, however it ends, even by SIGKILL."""
    if not is_encrypted(path):
        if passphrase:
            raise CryptError("%s is not encrypted, but an encryption key is set: not restoring an archive that "
                             "was not made with it" % path)
        yield path
        return
    if not passphrase:
        raise CryptError("%s is encrypted; give the key it was encrypted with" % path)
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDWR | getattr(os, "O_TMPFILE", 0), 0o600)
    with os.fdopen(fd, "w+b") as fout:
        decrypt_into(path, fout, passphrase)
        yield "/proc/%d/fd/%d" % (os.getpid(), fout.fileno())
