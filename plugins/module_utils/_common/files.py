# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files written so that a crash or a planted link can not make them lie: opened without following
a symbolic link, made durable with their directory, in private directories."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["NOFOLLOW", "open_nofollow", "fsync_dir", "fsync_file", "write_atomic", "ensure_private_dir"]

import os


# Journals, notes and locks are opened without following a symlink at their name (another user's link
# in a shared directory must not redirect a write).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_nofollow(path, mode="r"):
    """PATH opened for reading ("r", "rb") without following a symlink at its name."""
    return os.fdopen(os.open(path, os.O_RDONLY | NOFOLLOW), mode)


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    """Make a file's content, and its name in its directory, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_atomic(path, text, mode=0o600):
    """PATH holds TEXT, whole or not at all: written beside it, made durable, given MODE, renamed into place."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def ensure_private_dir(directory):
    """Create DIRECTORY and its missing parents mode 0700, whatever the umask; existing ones are left as
    they are (one may be /tmp). Parallel calls may make the same directory."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory.rstrip(os.sep))
    if parent and parent != directory:
        ensure_private_dir(parent)
    try:
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)
    except OSError:
        if not os.path.isdir(directory):
            raise
