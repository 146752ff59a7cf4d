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

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time

from ansible_collections.stacklift.migrate.plugins.module_utils.archive import ArchiveError, open_writer

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


def _extract_to(tar, member, dest):
    if os.path.dirname(member_name(member.name)[len("checkpoint/"):]):
        os.makedirs(os.path.dirname(dest), 0o700, exist_ok=True)
    with open(dest, "wb") as f:
        shutil.copyfileobj(tar.extractfile(member), f, 1 << 20)
    os.chmod(dest, member.mode & 0o777)


def _untar(fileobj, dest):
    """Extract a nested tar into DEST as tar would (owners, modes, devices), refusing any member
    that would land outside DEST: an absolute or '..' path, a hard link out, or a path through a
    symlink (a container's own "data -> /etc" must not reach the host's /etc)."""
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=fileobj, mode="r|") as inner:
        for m in inner:
            name = member_name(m.name)
            if not name:
                continue
            names = [name] + ([m.linkname] if m.islnk() else [])
            for n in names:
                if n.startswith("/") or ".." in n.split("/"):
                    raise ArchiveError("refusing %r from the archive: it would land outside %s" % (n, dest))
            parent = os.path.realpath(os.path.join(root, os.path.dirname(name)))
            if parent != root and not parent.startswith(root + "/"):
                raise ArchiveError("refusing %r from the archive: a symlink leads it outside %s" % (name, dest))
            m.name = name
            inner.extract(m, root, set_attrs=True, numeric_owner=True, **_TRUSTED)


def apply_deletions(upper, deleted, opaque):
    """Make the overlay whiteouts and opaque directories that delete files of the image."""
    for path in opaque:
        full = _inside(upper, path)
        os.makedirs(full, exist_ok=True)
        os.setxattr(full, OPAQUE_XATTR, b"y")
    for path in deleted:
        full = _inside(upper, path)
        parent = os.path.dirname(full)
        os.makedirs(parent, exist_ok=True)
        if os.path.lexists(full):
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)
        os.mknod(full, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def _inside(root, path):
    full = os.path.normpath(os.path.join(root, path.lstrip("/")))
    if full != root and not full.startswith(root.rstrip("/") + "/"):
        raise ArchiveError("refusing %r from the archive: it leads outside the container" % path)
    return full
