# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The archive stacklift's Docker engine writes and reads (docker.py), portable and self-describing
like Podman's export, whose layout it follows:

- ``container.json``: the container's inspect data (first: a restore creates the container from it);
- ``volumes/NAME.tar``: each local named volume's content;
- ``rootfs-diff.tar``: the files the container changed, read from its overlay2 upper directory;
  ``deleted.files`` and ``opaque.dirs``: its whiteouts and opaque directories, as JSON lists;
- ``checkpoint/``: CRIU's images.

Nothing here follows a symlink or a path out of the directory it writes to."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "ARCHIVED_MARKER", "CONTAINER_JSON", "DELETED_FILES", "OPAQUE_DIRS", "OPAQUE_XATTR", "MANAGED", "member_name",
    "trim_checkpoint", "write_archive", "confined", "extract_file", "untar", "apply_deletions", "json_list",
]

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    ArchiveError, json_member, open_writer)

ARCHIVED_MARKER = "stacklift-archived"

CONTAINER_JSON = "container.json"
DELETED_FILES = "deleted.files"
OPAQUE_DIRS = "opaque.dirs"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Docker writes these for every container itself (bind mounts from its own directory).
MANAGED = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
# Extraction as tar itself does it (modes, owners, devices kept): our own checks come first.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def member_name(name):
    """A tar member's path without its leading './' or '/' (a name like '.bashrc' kept whole)."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def trim_checkpoint(cpdir, archive):
    """Remove the CRIU images once they are in the archive (keep=false), leaving the directory with a
    note of where they went: the container still reads as checkpointed, and cannot restore in place."""
    for name in os.listdir(cpdir):
        path = os.path.join(cpdir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    with open(os.path.join(cpdir, ARCHIVED_MARKER), "w") as f:
        f.write(archive + "\n")


def write_archive(path, compression, c, cpdir, upper, volumes):
    """The stacklift Docker archive of a checkpointed container (members in restore order)."""
    out, close = open_writer(path, compression)
    ok = False
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, CONTAINER_JSON, json.dumps(c, sort_keys=True).encode("utf-8"))
            for vol, src in sorted(volumes.items()):
                _add_nested_tar(tar, "volumes/%s.tar" % vol, src)
            if upper:
                deleted, opaque = [], []
                _add_nested_tar(tar, "rootfs-diff.tar", upper, overlay=(deleted, opaque))
                _add_bytes(tar, DELETED_FILES, json.dumps(sorted(deleted)).encode("utf-8"))
                _add_bytes(tar, OPAQUE_DIRS, json.dumps(sorted(opaque)).encode("utf-8"))
            for name in sorted(os.listdir(cpdir)):
                tar.add(os.path.join(cpdir, name), arcname="checkpoint/" + name)
        ok = True
    finally:
        try:
            close()
        finally:
            if not ok and os.path.exists(path):
                os.unlink(path)


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_nested_tar(tar, name, src, overlay=None):
    """SRC's tree as a tar inside the archive. With OVERLAY=(deleted, opaque), SRC is an overlay
    upper directory: its whiteouts are listed in DELETED (not archived), its opaque directories in OPAQUE."""
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as inner:
            for entry in sorted(os.listdir(src)):
                inner.add(os.path.join(src, entry), arcname=entry,
                          filter=_overlay_filter(src, overlay) if overlay is not None else None)
        info = tarfile.TarInfo(name)
        info.size = buf.tell()
        info.mode = 0o600
        info.mtime = int(time.time())
        buf.seek(0)
        tar.addfile(info, buf)


def _overlay_filter(upper, overlay):
    deleted, opaque = overlay

    def f(member):
        path = "/" + member_name(member.name)
        if member.ischr() and member.devmajor == 0 and member.devminor == 0:
            deleted.append(path)
            return None
        if path in MANAGED:
            return None
        if member.isdir():
            try:
                if os.getxattr(os.path.join(upper, member.name), OPAQUE_XATTR) == b"y":
                    opaque.append(path)
            except (OSError, AttributeError):
                pass
        return member
    return f


def confined(root, rel):
    """ROOT/REL for a path REL read from an archive: refused (ArchiveError) when absolute or with '..', or
    when a symlink among its directories leads outside ROOT. Its last component is not resolved: the
    caller replaces a symlink there rather than follow it."""
    rel = member_name(rel)
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise ArchiveError("refusing %r from the archive: it would land outside %s" % (rel, root))
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.join(real_root, os.path.dirname(rel)))
    if parent != real_root and not parent.startswith(real_root + "/"):
        raise ArchiveError("refusing %r from the archive: a symlink leads it outside %s" % (rel, root))
    return os.path.join(parent, os.path.basename(rel))


def _unlink_unless_dir(path, keep_dir):
    """A symlink (or, unless KEEP_DIR, anything but a directory) at PATH removed: what comes next is
    written in its place, never through it."""
    if os.path.islink(path) or (os.path.lexists(path) and not (keep_dir and os.path.isdir(path))):
        os.unlink(path)


def extract_file(tar, member, root, rel):
    """A regular file MEMBER of TAR to ROOT/REL (confined), mode 0600 until its own mode is set."""
    dest = confined(root, rel)
    os.makedirs(os.path.dirname(dest), 0o700, exist_ok=True)
    _unlink_unless_dir(dest, keep_dir=False)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(tar.extractfile(member), f, 1 << 20)
    os.chmod(dest, member.mode & 0o777)


def untar(fileobj, dest):
    """Extract a nested tar into DEST as tar would (owners, modes, devices), refusing any member that
    would land outside DEST: an absolute or '..' path, a path or a hard link's source through a symlink
    (a container's own "data -> /etc" must not reach the host's /etc). A symlink already in place under
    a member's name is replaced, never written through."""
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=fileobj, mode="r|") as inner:
        for m in inner:
            name = member_name(m.name)
            if not name:
                continue
            target = confined(root, name)
            if m.islnk():
                source = os.path.realpath(confined(root, m.linkname))
                if not source.startswith(root + "/"):
                    raise ArchiveError("refusing %r from the archive: its hard link's source %r is outside %s"
                                       % (name, m.linkname, dest))
                m.linkname = member_name(m.linkname)
            _unlink_unless_dir(target, keep_dir=m.isdir())
            m.name = name
            inner.extract(m, root, set_attrs=True, numeric_owner=True, **_TRUSTED)


def apply_deletions(upper, deleted, opaque):
    """Make the overlay whiteouts and opaque directories that delete files of the image, each confined to
    UPPER (a symlink among a path's directories that leads out is refused; one in its place is replaced)."""
    for path in opaque:
        full = confined(upper, path)
        _unlink_unless_dir(full, keep_dir=True)
        os.makedirs(full, exist_ok=True)
        os.setxattr(full, OPAQUE_XATTR, b"y", follow_symlinks=False)
    for path in deleted:
        full = confined(upper, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        _unlink_unless_dir(full, keep_dir=False)
        os.mknod(full, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def json_list(tar, member, archive):
    """DELETED_FILES or OPAQUE_DIRS: a bounded JSON list of paths."""
    paths = json_member(tar, member, archive)
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ArchiveError("%s: %s is not a list of paths" % (archive, member.name))
    return paths
