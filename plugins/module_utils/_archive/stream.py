# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoint archives as streams of bytes: their names, the tar stream read through zstd or gzip,
the writer, the digest, the manifest beside each archive. Only the standard library: every engine reads
and writes its archives through this leaf.

A Podman checkpoint archive is a tar (plain, gzip or zstd) holding config.dump
(the container's config), spec.dump (its OCI spec), network.status, the CRIU
images under checkpoint/, and the rootfs and volume diffs.  It does not say
which CRIU, kernel or host made it, so container_checkpoint writes a manifest
beside it (ARCHIVE + MANIFEST_SUFFIX) with those facts and the archive's sha256.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "MANIFEST_SUFFIX", "MANIFEST_HOST_FACTS", "ZSTD_MAGIC", "GZIP_MAGIC", "MAX_JSON_MEMBER", "MAX_MEMBERS",
    "ArchiveError", "sha256_file", "compression_of", "TarStream", "open_writer", "read_manifest",
    "write_manifest", "json_member", "SUFFIXES", "choose_compression", "archive_name",
]

import hashlib
import json
import os
import subprocess
import tarfile
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError
from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import write_atomic


MANIFEST_SUFFIX = ".stacklift.json"
MANIFEST_HOST_FACTS = ("engine", "engine_version", "criu_version", "kernel", "cgroup_version", "runtime_version",
                       "host", "created")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_JSON_MEMBERS = ("config.dump", "spec.dump", "network.status", "container.json")
# Caps of the archive reader: a small compressed archive must not make it allocate gigabytes.
MAX_JSON_MEMBER = 16 << 20
MAX_MEMBERS = 1000000


class ArchiveError(StackliftError):
    """An archive is missing, unreadable, or not a checkpoint archive."""


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def compression_of(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "none"


class TarStream:
    """Open an archive as a streaming tarfile, whatever its compression."""

    def __init__(self, path):
        self.path = path
        self.proc = None
        self.raw = None

    def __enter__(self):
        kind = compression_of(self.path)
        if kind == "zstd":
            try:
                import zstandard  # optional; the zstd binary serves otherwise
                self.raw = zstandard.ZstdDecompressor().stream_reader(open(self.path, "rb"))
            except ImportError:
                try:
                    # fed on its stdin: zstd skips a path that is a symlink, as /proc/PID/fd/N of a
                    # decrypted archive is (encryption.plaintext)
                    with open(self.path, "rb") as src:
                        self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=src, stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE)
                except OSError:
                    raise ArchiveError("%s is zstd-compressed, but neither the zstandard Python module "
                                       "nor the zstd binary is on this host" % self.path)
                self.raw = self.proc.stdout
            self.tar = tarfile.open(fileobj=self.raw, mode="r|")
        else:
            self.tar = tarfile.open(self.path, mode="r|gz" if kind == "gzip" else "r|")
        return self.tar

    def __exit__(self, *exc):
        self.tar.close()
        if self.raw is not None:
            self.raw.close()
        if self.proc is not None:
            self.proc.wait()
        return False


def open_writer(path, compression):
    """(file object to write a tar to, closer) for an archive of COMPRESSION (zstd, gzip, none)."""
    # 0600 from its first byte (it holds the container's memory), and never an existing file
    raw = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    if compression == "gzip":
        import gzip
        gz = gzip.GzipFile(fileobj=raw, mode="wb")
        return gz, lambda: (gz.close(), raw.close())
    if compression == "zstd":
        proc = subprocess.Popen(["zstd", "-q", "-c", "-"], stdin=subprocess.PIPE, stdout=raw)

        def close():
            proc.stdin.close()
            if proc.wait() != 0:
                raise ArchiveError("zstd failed while writing the archive")
            raw.close()
        return proc.stdin, close
    return raw, raw.close


def read_manifest(path):
    mpath = path + MANIFEST_SUFFIX
    if not os.path.exists(mpath):
        return {}
    with open(mpath) as f:
        return json.load(f)


def write_manifest(path, data):
    mpath = path + MANIFEST_SUFFIX
    write_atomic(mpath, json.dumps(data, indent=2, sort_keys=True))
    return mpath


def json_member(tar, member, path):
    """A JSON member of an archive, within MAX_JSON_MEMBER bytes; ArchiveError otherwise."""
    if not member.isfile() or member.size > MAX_JSON_MEMBER:
        raise ArchiveError("%s: %s is %s, not a JSON document of at most %d bytes"
                           % (path, member.name, "%d bytes" % member.size if member.isfile() else "not a file",
                              MAX_JSON_MEMBER))
    try:
        return json.loads(tar.extractfile(member).read(MAX_JSON_MEMBER).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ArchiveError("%s: %s is not valid JSON: %s" % (path, member.name, e))


SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}


def choose_compression(link_mb_s, compressor_mb_s, ratio):
    """zstd or none, whichever moves an archive sooner: the engine compresses before the archive is sent, so
    compressing pays when S/compressor + S*ratio/link < S/link, that is when the link is slower than
    compressor * (1 - ratio). LINK_MB_S: the slowest link to a target; RATIO: compressed/plain size."""
    if not link_mb_s or not compressor_mb_s or ratio is None:
        return "zstd"
    return "none" if link_mb_s > compressor_mb_s * (1.0 - min(ratio, 1.0)) else "zstd"


def archive_name(archive_dir, container, compression="zstd"):
    return os.path.join(archive_dir, container + SUFFIXES[compression])
