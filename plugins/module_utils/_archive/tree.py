# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A container's changed files staged on its target before the fence, and only what changed since inside it.

A database keeps its files in its container's layer or in a volume, and Podman's export packs them whole into
the checkpoint's archive, inside the pause (962 MB of a PostgreSQL's 1.44 GB archive). Instead the source sends
the container's overlay upper directory (its changes to the image) while the service still serves
(``changes`` against an empty manifest), and, once the service is checkpointed, only what changed since: the
files whose status changed, or that were written too close to their reading to be trusted, or that a process
maps shared and writable, and of those only the blocks whose digest changed. The target's receiver
(``receive``) checks each block's sha256 as it arrives and writes it into a staging directory beside the archive,
or, for a named volume, straight into the volume made for it there; the runtime wrapper (``apply``) puts the
container's root's tree into place before runc restores it, once its manifest is the one the archive recorded
(``check``) and each file whole.

A leaf of the standard library only: ``lazy_runtime`` installs this file on the hosts beside the wrapper
(``python3 tree.py receive STAGE [TREE]`` reads a stream on stdin; ``python3 tree.py apply REQUEST BUNDLE``).

The stream: records, each a line of JSON and, for ``data``, that many bytes after it. Overlay's whiteouts (a
character device 0/0) and opaque directories are kept in the manifest: ``apply`` removes what they hide."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["BLOCK", "STAGE_BYTES", "STAGE_SUFFIX", "MADE", "MARGIN_NS", "MANIFEST", "TREE", "TreeError", "scan_entry", "changes", "under", "digest_of",
           "entries_bytes", "receive", "check", "apply", "where", "apply_request", "main"]

import hashlib
import json
import os
import shutil
import stat
import sys
import time

BLOCK = 1 << 20
# From this many bytes of changed files on, a container's files are staged before the fence (the window's
# source); below, they cross in the archive as before (a few files cost more round trips than bytes).
STAGE_BYTES = 64 << 20
STAGE_SUFFIX = ".files"  # the staging directory: beside the archive, on the target
MADE = "made"  # in a staged volume's stage directory on the target: the volume was made there for the run
# A file whose last change came less than this before it was read may have changed again within the
# filesystem's timestamp granularity (a jiffy, coarse clocks): its status alone does not tell; it is read again.
MARGIN_NS = 2 * 10 ** 9
TREE = "tree"
MANIFEST = "manifest.json"
_STATUS = ("kind", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "ino", "target", "rdev", "opaque")


class TreeError(Exception):
    """A tree cannot be staged, received or applied."""


def _opaque(path):
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except (OSError, AttributeError):
            continue
    return False


def scan_entry(path, st=None):
    """What PATH is ({kind, mode, uid, gid, size, mtime_ns, ctime_ns, ino} and, by kind, target, rdev, opaque).
    Kinds: dir, file, link, whiteout (overlay's character device 0/0), fifo, device; socket is left out (CRIU
    binds a restored socket's path itself)."""
    st = st or os.lstat(path)
    mode = st.st_mode
    entry = {"mode": stat.S_IMODE(mode), "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size,
             "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}
    if stat.S_ISDIR(mode):
        entry.update(kind="dir", size=0, opaque=_opaque(path))
    elif stat.S_ISREG(mode):
        entry["kind"] = "file"
    elif stat.S_ISLNK(mode):
        entry.update(kind="link", target=os.readlink(path))
    elif stat.S_ISCHR(mode) and st.st_rdev == 0:
        entry.update(kind="whiteout", size=0)
    elif stat.S_ISFIFO(mode):
        entry.update(kind="fifo", size=0)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.update(kind="device", size=0, rdev=st.st_rdev, char=stat.S_ISCHR(mode))
    else:
        return None
    return entry


def _walk(root):
    """(relative path, entry) of everything under ROOT, parents before their children; what goes while it is
    walked (a service's temporary file) is left out. ROOT itself is ".": its owner and mode are the tree's too (a
    database's data directory must be its user's, 0700)."""
    yield ".", scan_entry(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                entry = scan_entry(path)
            except FileNotFoundError:
                continue
            if entry is not None:
                yield os.path.relpath(path, root), entry


def _unchanged(old, entry, rel, mapped):
    """Whether the copy sent of a file is still its content: the same status, read well after its last change,
    and no process maps it shared and writable."""
    return (old is not None and all(old.get(k) == entry.get(k) for k in _STATUS) and rel not in mapped and
            max(old["mtime_ns"], old["ctime_ns"]) + MARGIN_NS < old.get("read_ns", 0))


def _file_records(root, rel, entry, old):
    """The records of a file whose copy may differ: the blocks whose digest differs from OLD's."""
    entry["read_ns"] = time.time_ns()  # before reading: a change after this shows in its status
    old_blocks = (old or {}).get("blocks") or []
    try:
        f = open(os.path.join(root, rel), "rb")
    except FileNotFoundError:  # gone since it was walked: the copy loses it too
        entry["kind"] = None
        yield {"op": "remove", "path": rel}, b""
        return
    yield {"op": "file", "path": rel}, b""
    blocks, offset = [], 0
    with f:
        for data in iter(lambda: f.read(BLOCK), b""):
            digest = hashlib.sha256(data).hexdigest()
            if len(blocks) >= len(old_blocks) or old_blocks[len(blocks)] != digest:
                yield {"op": "data", "path": rel, "offset": offset, "len": len(data), "sha256": digest}, data
            blocks.append(digest)
            offset += len(data)
    entry.update(blocks=blocks, length=offset)
    yield dict(_meta(entry), op="meta", path=rel), b""


def _meta(entry):
    return {k: entry[k] for k in ("mode", "uid", "gid", "mtime_ns", "length") if k in entry}


def changes(root, previous, mapped=(), out=None):
    """The records that bring a copy staged from PREVIOUS ({path: entry}, {} for none) up to ROOT now. MAPPED:
    paths (relative to ROOT) a process maps shared and writable: read again whatever their status says. OUT
    (a dict) gets the new manifest's entries as they are scanned."""
    out = {} if out is None else out
    for rel, entry in _walk(root):
        old = previous.get(rel)
        if old is not None and old["kind"] != entry["kind"]:
            yield {"op": "remove", "path": rel}, b""
            old = None
        if entry["kind"] == "file":
            if _unchanged(old, entry, rel, mapped):
                entry.update((k, old[k]) for k in ("blocks", "length", "read_ns"))
            else:
                yield from _file_records(root, rel, entry, old)
                if entry["kind"] is None:
                    continue
        elif old is None or any(old.get(k) != entry.get(k) for k in _STATUS if k not in ("ino", "ctime_ns")):
            yield dict(entry, op="entry", path=rel), b""
        out[rel] = entry
    for rel in sorted(set(previous) - set(out), reverse=True):
        yield {"op": "remove", "path": rel}, b""


def under(paths, into):
    """The PATHS (inside a container, without the leading /) below INTO, relative to it: a tree's own paths."""
    top = into.strip("/")
    return set(p for p in paths) if not top else set(p[len(top) + 1:] for p in paths if p.startswith(top + "/"))


def digest_of(entries):
    """The sha256 of a manifest's entries, as the archive's manifest records it and the target checks it."""
    wanted = {rel: {k: e.get(k) for k in ("kind", "mode", "uid", "gid", "blocks", "length", "target", "rdev", "opaque")}
              for rel, e in entries.items()}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode("utf-8")).hexdigest()


def entries_bytes(entries):
    """The bytes of the files of a manifest's entries."""
    return sum(e.get("length", e.get("size", 0)) for e in entries.values() if e["kind"] == "file")


def encode(record, data=b""):
    """A record as it travels: its JSON on a line, then its data."""
    return json.dumps(record, sort_keys=True).encode("utf-8") + b"\n" + data


def _inside(base, rel):
    """BASE/REL, refusing a path that is absolute or climbs out, or whose parent is not a directory under
    BASE itself (a link on the way)."""
    if rel == ".":
        return base
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise TreeError("a path that leaves the tree: %r" % (rel,))
    path = os.path.join(base, rel)
    parent = os.path.realpath(os.path.dirname(path))
    if parent != os.path.realpath(base) and not parent.startswith(os.path.realpath(base) + os.sep):
        raise TreeError("%r goes through a link out of %s" % (rel, base))
    return path


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _make(path, entry, source=None):
    """PATH made as ENTRY says (a file from SOURCE, whose copy apply checks); its owner and mode set."""
    kind = entry["kind"]
    if kind == "dir":
        if not os.path.isdir(path) or os.path.islink(path):
            _remove(path)
            os.mkdir(path)
    else:
        _remove(path)
        if kind == "link":
            os.symlink(entry["target"], path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.mknod(path, (stat.S_IFCHR if entry.get("char") else stat.S_IFBLK) | 0o600, entry["rdev"])
    os.lchown(path, entry["uid"], entry["gid"])
    if kind != "link":
        os.chmod(path, entry["mode"])


def _set_meta(path, meta):
    with open(path, "r+b") as f:
        f.truncate(meta["length"])
    os.chown(path, meta["uid"], meta["gid"])
    os.chmod(path, meta["mode"])
    os.utime(path, ns=(meta["mtime_ns"], meta["mtime_ns"]))


def receive(stream, stage, tree=None):
    """Apply the records read from STREAM to the copy at TREE (default STAGE/TREE; a volume's own directory, say),
    each block checked against its sha256 before it is written; the last record, ``end``, carries the manifest,
    written to STAGE/MANIFEST once every record before it is in. Returns the number of data bytes written."""
    tree = tree or os.path.join(stage, TREE)
    for d in (stage, tree):
        if not os.path.isdir(d):
            os.makedirs(d, mode=0o700)
    written, handle = 0, None
    for line in iter(stream.readline, b""):
        record = json.loads(line.decode("utf-8"))
        op = record.pop("op")
        if op == "end":
            tmp = os.path.join(stage, MANIFEST + ".tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(stage, MANIFEST))
            return written
        path = _inside(tree, record.pop("path"))
        if op == "remove":
            _remove(path)
        elif op == "entry" and record["kind"] == "whiteout":
            _remove(path)  # in the manifest only: a device 0/0 cannot be made on every filesystem (overlay: EPERM)
        elif op == "entry":
            _make(path, record)
        elif op == "file":
            if not os.path.isfile(path) or os.path.islink(path):
                _remove(path)
                open(path, "wb").close()
        elif op == "data":
            data = stream.read(record["len"])
            if len(data) != record["len"]:
                raise TreeError("the stream ended inside the data of %s" % path)
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                raise TreeError("a block of %s at %d arrived damaged (its sha256 differs): not written"
                                % (path, record["offset"]))
            if handle is None or handle.name != path:
                handle = _switch(handle, path)
            handle.seek(record["offset"])
            handle.write(data)
            written += len(data)
        elif op == "meta":
            handle = _switch(handle, None)
            _set_meta(path, record)
        else:
            raise TreeError("an unknown record: %r" % op)
    raise TreeError("the stream ended before its manifest")


def _switch(handle, path):
    if handle is not None:
        handle.close()
    return open(path, "r+b") if path else None


def _copy(source, path, entry):
    """SOURCE copied to PATH (a new file) by the kernel; its blocks were checked as they arrived (receive), so what
    is left to check is that the file is whole."""
    if os.path.getsize(source) != entry["length"]:
        raise TreeError("%s holds %d bytes, its manifest says %d: not restoring"
                        % (source, os.path.getsize(source), entry["length"]))
    shutil.copyfile(source, path, follow_symlinks=False)
    _set_meta(path, entry)


def check(stage, expected):
    """The entries of the manifest at STAGE, once its digest is EXPECTED (the one the archive recorded)."""
    with open(os.path.join(stage, MANIFEST)) as f:
        entries = json.load(f)["entries"]
    if digest_of(entries) != expected:
        raise TreeError("the staged files at %s are not those the archive was made with (manifest digest %s, "
                        "expected %s): not restoring" % (stage, digest_of(entries), expected))
    return entries


def apply(stage, root, expected, exact=False):
    """The staged tree at STAGE put into ROOT (the container's root, mounted, or a volume's directory): files
    copied and checked, links, dirs, and what overlay's whiteouts and opaque directories hide removed; EXACT (a
    volume: the tree is all of it), whatever else is there too. EXPECTED: the manifest's digest the archive
    recorded (digest_of). Returns the number of entries applied."""
    entries = check(stage, expected)
    tree, dirs = os.path.join(stage, TREE), []
    for rel in sorted(entries):
        entry, path = entries[rel], _inside(root, rel)
        if entry["kind"] == "whiteout":
            _remove(path)
        elif entry["kind"] == "file":
            _remove(path)
            _copy(_inside(tree, rel), path, entry)
        else:
            _make(path, entry)
        if entry["kind"] == "dir":
            dirs.append((path, entry))
            if entry.get("opaque") or exact:  # overlay hid what the image had here: only the staged entries remain
                _prune(path, rel, entries)
    for path, entry in reversed(dirs):
        os.utime(path, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    return len(entries)


def _prune(path, rel, entries):
    """What is in the directory PATH (REL in the tree) and not among ENTRIES, removed."""
    for name in os.listdir(path):
        if (name if rel in ("", ".") else os.path.join(rel, name)) not in entries:
            _remove(os.path.join(path, name))


def where(bundle, into):
    """The host's directory that is INTO inside the container of the OCI BUNDLE: its root for "/", else the source
    of the bind mount at INTO (a named volume's directory)."""
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    if into == "/":
        root = config["root"]["path"]
        return root if os.path.isabs(root) else os.path.join(bundle, root)
    for mount in config.get("mounts") or []:
        if mount.get("destination") == into and os.path.isabs(mount.get("source") or "") and \
                os.path.isdir(mount["source"]):
            return mount["source"]
    raise TreeError("the container has no directory mounted at %s to put its staged files into" % into)


def apply_request(request, bundle):
    """Every tree a restore's REQUEST (a JSON list of {stage, digest, into, exact}) names, applied into the
    container of BUNDLE; returns the number of entries applied."""
    with open(request) as f:
        trees = json.load(f)
    return sum(apply(t["stage"], where(bundle, t["into"]), t["digest"], exact=t.get("exact", False)) for t in trees)


def main(argv=None):
    """``receive STAGE [TREE]`` (the stream on stdin) or ``apply REQUEST BUNDLE``; writes a line of JSON, exit 1 on
    failure (why on stderr)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if len(argv) in (2, 3) and argv[0] == "receive":
            stdin = getattr(sys.stdin, "buffer", sys.stdin)
            result = {"written": receive(stdin, argv[1], (argv[2:] or [None])[0])}
        elif len(argv) == 3 and argv[0] == "apply":
            result = {"applied": apply_request(argv[1], argv[2])}
        else:
            sys.stderr.write("usage: tree.py receive STAGE [TREE] | apply REQUEST BUNDLE\n")
            return 2
    except (TreeError, OSError, ValueError, KeyError) as e:
        sys.stderr.write("stacklift tree: %s\n" % e)
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
