# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Remote lazy pages: a checkpoint's memory split off its images, and served to the target's lazy-pages daemon.

A leaf of the standard library only: ``lazy_runtime`` installs this file on the hosts as the runtime
wrapper's helper (``python3 pages.py split IMAGE_DIR [HOME]|unsplit IMAGE_DIR``), and the source window
imports it.

``split`` rewrites a CRIU checkpoint as CRIU's own lazy dump writes it: each process's pagemap marks the pages
that may be restored lazily ``PE_LAZY`` only (not in the pages file), and its pages file keeps only the rest
(stacks, file-backed data: a few MB). The originals move aside, whole, to ``IMAGE_DIR + STASH_SUFFIX``: they
serve the target's ``criu lazy-pages --page-server`` (``serve``, CRIU's page-server protocol: ``PS_IOV_GET``
answered by ``PS_IOV_ADD_F`` and the pages), and ``unsplit`` puts them back for a restore in place (a
rollback). So the archive that crosses in the pause holds no lazy page, and the source keeps every page
until the target holds them all; then ``discard`` removes them.

Where memory allows, the runtime writes the checkpoint into a scratch directory on a tmpfs (the wrapper
asks for it), and ``split(SCRATCH, HOME)`` moves the small rest to the engine's directory: a checkpoint
written to disk makes the kernel write its page cache back while the container is frozen (beyond
``vm.dirty_background_ratio``, the writer is throttled), which measured 3.7-8.2 s of a 3 GiB dump here.

On the target, ``keep`` (started by the wrapper with each lazy restore) holds a second reference to the
daemon's userfaultfds, and if the daemon dies before every page is in, finishes the fill itself (``finish``):
what each userfaultfd may still lack from the daemon's log (``replay_log``), the pages from the source's page
server (``PageSource``, with the run's token)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["STASH_SUFFIX", "MARKER", "PAGE_SIZE", "SplitError", "split", "unsplit", "discard", "is_split",
           "PageIndex", "serve", "main", "parents", "remove_tree", "PARENT_LINK",
           "present_bytes", "keep", "lazy_ranges", "replay_log", "finish", "PageSource"]

import errno
import json
import os
import re
import shutil
import struct
import sys
import time

STASH_SUFFIX = ".stacklift-pages"
MARKER = "stacklift-pages.json"  # in the image directory: it travels in the archive
PAGE_SIZE = 4096  # CRIU's images count x86_64 pages
PE_PARENT, PE_LAZY, PE_PRESENT = 1, 2, 4
PARENT_LINK = "parent"  # CRIU's link from a checkpoint to the pre-dump it continues
PS_IOV_ADD_F, PS_IOV_GET, PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE = 6, 7, 0x1023, 0x1024
_PSI = struct.Struct("<I4xQQQ")  # struct page_server_iov {u32 cmd; u64 nr_pages; u64 vaddr; u64 dst_id}
_PAGEMAP = re.compile(r"^pagemap-(\d+)\.img$")
_CHUNK = 1 << 20


class SplitError(Exception):
    """A checkpoint that cannot be split (left as it was)."""


def _varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value):
    out = bytearray()
    while True:
        b, value = value & 0x7F, value >> 7
        out.append(b | 0x80 if value else b)
        if not value:
            return bytes(out)


def _fields(buf):
    """[(field number, varint value or None, raw bytes of the field)] of a protobuf message of varints."""
    out, pos = [], 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        if key & 7 != 0:
            raise SplitError("unexpected protobuf wire type %d in a pagemap" % (key & 7))
        value, pos = _varint(buf, pos)
        out.append((key >> 3, value, buf[start:pos]))
    return out


def _read_image(path):
    """(its 8 magic bytes, [each entry's protobuf bytes]) of a CRIU protobuf image."""
    with open(path, "rb") as f:
        data = f.read()
    head, pos, entries = data[:8], 8, []
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        entries.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    return head, entries


def _write_image(path, head, entries):
    with open(path, "wb") as f:
        f.write(head)
        for e in entries:
            f.write(struct.pack("<I", len(e)) + e)


def _entry(raw):
    fields = {n: v for n, v, _raw in _fields(raw)}
    if 4 not in fields or fields.get(3):
        raise SplitError("a pagemap without flags (CRIU's old in_parent format): not a checkpoint of this CRIU")
    return fields[1], fields.get(5, fields.get(2)), fields[4]


def _with_flags(raw, flags):
    return b"".join(_encode_varint(4 << 3) + _encode_varint(flags) if n == 4 else r for n, _value, r in _fields(raw))


def _pagemap_entry(vaddr, nr, flags):
    return b"".join(_encode_varint(k << 3) + _encode_varint(v) for k, v in ((1, vaddr), (2, nr), (4, flags)))


def _in_parents(image_dir, pid, vaddr, nr, depth=0):
    """Where NR pages at VADDR of PID, marked PE_PARENT in IMAGE_DIR, are in its chain of pre-dumps (its
    ``parent`` link, CRIU's): [(vaddr, pages, pages file, offset, lazy)], lazy as the pre-dump that wrote them
    marked them."""
    parent = os.path.join(image_dir, PARENT_LINK)
    if depth > 64 or not os.path.isdir(parent):
        raise SplitError("pages at %#x of process %s are in a parent image that is not there" % (vaddr, pid))
    pages, _head, _first, rows = _plan(parent, pid)
    out, end = [], vaddr + nr * PAGE_SIZE
    for _raw, start, count, flags, offset in rows:
        lo, hi = max(vaddr, start), min(end, start + count * PAGE_SIZE)
        if lo >= hi:
            continue
        if flags & PE_PRESENT:
            out.append((lo, (hi - lo) // PAGE_SIZE, os.path.join(os.path.realpath(parent), pages),
                        offset + (lo - start), bool(flags & PE_LAZY)))
        elif flags & PE_PARENT:
            out += _in_parents(parent, pid, lo, (hi - lo) // PAGE_SIZE, depth + 1)
    if sum(piece[1] for piece in out) != nr:
        raise SplitError("pages at %#x of process %s are not all in its parent images" % (vaddr, pid))
    return out


def _entries(image_dir):
    """(pid, pages, flags) of every pagemap entry of IMAGE_DIR's dump, all its processes."""
    for pid in _pids(image_dir):
        for _raw, _vaddr, nr, flags, _offset in _plan(image_dir, pid)[3]:
            yield pid, nr, flags


def present_bytes(image_dir):
    """The bytes of pages IMAGE_DIR's dump (or pre-dump) wrote, all its processes."""
    return PAGE_SIZE * sum(nr for _pid, nr, flags in _entries(image_dir) if flags & PE_PRESENT)


def parents(image_dir):
    """The pre-dump directories IMAGE_DIR's checkpoint stands on (its ``parent`` links, followed), nearest first."""
    out, link = [], os.path.join(image_dir, PARENT_LINK)
    while os.path.isdir(link) and len(out) < 64:
        out.append(os.path.realpath(link))
        link = os.path.join(out[-1], PARENT_LINK)
    return out


def _plan(image_dir, pid):
    """(pages file name, head, [(entry raw, vaddr, nr, flags, offset in the pages file)]) of one process."""
    head, entries = _read_image(os.path.join(image_dir, "pagemap-%s.img" % pid))
    if not entries:
        raise SplitError("pagemap-%s.img has no head" % pid)
    pages_id = {n: v for n, v, _raw in _fields(entries[0])}.get(1)
    rows, offset = [], 0
    for raw in entries[1:]:
        vaddr, nr, flags = _entry(raw)
        rows.append((raw, vaddr, nr, flags, offset))
        if flags & PE_PRESENT:
            offset += nr * PAGE_SIZE
    pages = "pages-%s.img" % pages_id
    if os.path.getsize(os.path.join(image_dir, pages)) != offset:
        raise SplitError("%s does not hold the pages pagemap-%s.img names" % (pages, pid))
    return pages, head, [entries[0]], rows


def _copy_range(src, dst, offset, length):
    src.seek(offset)
    while length:
        block = src.read(min(length, _CHUNK))
        if not block:
            raise SplitError("a pages file ended early")
        dst.write(block)
        length -= len(block)


def _split_one(image_dir, pid):
    """The split files of one process, written beside the originals as .split; its index of lazy ranges."""
    pages, head, kept, rows = _plan(image_dir, pid)
    ranges = []
    with open(os.path.join(image_dir, pages), "rb") as src, \
            open(os.path.join(image_dir, pages + ".split"), "wb") as dst:
        for raw, vaddr, nr, flags, offset in rows:
            if flags & PE_PARENT and not flags & PE_PRESENT:  # unchanged since a pre-dump: served from there
                for v, n, path, at, lazy in _in_parents(image_dir, pid, vaddr, nr):
                    kept.append(_pagemap_entry(v, n, PE_LAZY if lazy else PE_PRESENT))
                    if lazy:
                        ranges.append([v, n, at, path])
                    else:  # eager (a stack): into the archive, which carries no parent
                        with open(path, "rb") as parent_pages:
                            _copy_range(parent_pages, dst, at, n * PAGE_SIZE)
                continue
            if flags & PE_PRESENT and flags & PE_LAZY:
                kept.append(_with_flags(raw, PE_LAZY))
                ranges.append([vaddr, nr, offset])
                continue
            kept.append(raw)
            if flags & PE_PRESENT:
                _copy_range(src, dst, offset, nr * PAGE_SIZE)
    _write_image(os.path.join(image_dir, "pagemap-%s.img.split" % pid), head, kept)
    return {"pages": pages, "ranges": ranges}


def _pids(image_dir):
    return sorted(int(m.group(1)) for m in (_PAGEMAP.match(n) for n in os.listdir(image_dir)) if m)


def split(image_dir, home=None):
    """Split IMAGE_DIR's checkpoint (see the module's text); {pids, lazy_bytes}. All or nothing:
    a checkpoint that cannot be split is left as it was (SplitError).

    With HOME, IMAGE_DIR is a scratch directory in memory (a tmpfs) the runtime wrote the checkpoint to, so
    that no page cache is written back while the container is frozen; HOME is where the engine reads it.
    Split or whole, the checkpoint's files then move to HOME, and a stash stays in memory, linked from
    HOME's stash path."""
    try:
        return _split(image_dir)
    finally:
        if home:
            _settle(image_dir, home)


def _settle(scratch, home):
    """SCRATCH's checkpoint files into HOME (small once split), its stash (if any) linked from HOME's."""
    if not os.path.isdir(home):
        os.makedirs(home, 0o700)
    for name in os.listdir(scratch):
        shutil.move(os.path.join(scratch, name), os.path.join(home, name))
    os.rmdir(scratch)
    if os.path.isdir(_stash(scratch)):
        if os.path.lexists(_stash(home)):
            os.unlink(_stash(home))
        os.symlink(_stash(scratch), _stash(home))


def _split(image_dir):
    stash = _stash(image_dir)
    if is_split(image_dir):
        raise SplitError("%s is split already" % image_dir)
    pids = _pids(image_dir)
    index = {}
    try:
        for pid in pids:
            index[str(pid)] = _split_one(image_dir, pid)
    except (SplitError, OSError, IndexError, struct.error) as e:
        _remove_split_files(image_dir)
        raise SplitError("cannot split %s: %s" % (image_dir, e))
    os.mkdir(stash, 0o700)
    with open(os.path.join(stash, "index.json"), "w") as f:
        json.dump(dict(index, parents=parents(image_dir)), f)
    for pid, one in index.items():
        for name in ("pagemap-%s.img" % pid, one["pages"]):
            os.rename(os.path.join(image_dir, name), os.path.join(stash, name))
            os.rename(os.path.join(image_dir, name + ".split"), os.path.join(image_dir, name))
    if os.path.islink(os.path.join(image_dir, PARENT_LINK)):  # the archive carries no parent: it would dangle
        os.rename(os.path.join(image_dir, PARENT_LINK), os.path.join(stash, PARENT_LINK))
    lazy_pages = sum(r[1] for one in index.values() for r in one["ranges"])
    summary = {"pids": sorted(int(p) for p in index), "lazy_bytes": PAGE_SIZE * lazy_pages}
    with open(os.path.join(image_dir, MARKER), "w") as f:
        json.dump(summary, f)
    return summary


def remove_tree(path):
    """PATH removed if there, and its directory too once empty (a container's pre-dumps: DIR/ID/ROUND)."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    up = os.path.dirname(path.rstrip("/"))
    if os.path.isdir(up) and not os.listdir(up):
        os.rmdir(up)


def _remove_split_files(image_dir):
    for name in os.listdir(image_dir):
        if name.endswith(".split"):
            os.unlink(os.path.join(image_dir, name))


def _stash(image_dir):
    """Where a split checkpoint's originals wait: beside IMAGE_DIR, so that the engine's export leaves them out."""
    return image_dir.rstrip("/") + STASH_SUFFIX


def is_split(image_dir):
    """Whether IMAGE_DIR holds a split checkpoint (its originals aside, on the host that made it)."""
    return os.path.isdir(_stash(image_dir))


def unsplit(image_dir):
    """The originals back in IMAGE_DIR (the checkpoint whole again, for a restore in place); True if it was split."""
    stash = _stash(image_dir)
    if not os.path.isdir(stash):
        return False
    for name in os.listdir(stash):
        if name != "index.json":
            shutil.move(os.path.join(stash, name), os.path.join(image_dir, name))  # from memory: a copy
    if os.path.exists(os.path.join(image_dir, MARKER)):
        os.unlink(os.path.join(image_dir, MARKER))
    discard(image_dir, keep_parents=True)  # the restore in place reads them
    return True


def discard(image_dir, keep_parents=False):
    """The stash gone (its pages were served, or are back in IMAGE_DIR), and the scratch it lies in if linked;
    unless KEEP_PARENTS, the pre-dumps it stood on too."""
    stash = _stash(image_dir)
    target = os.path.realpath(stash)
    if not keep_parents and os.path.isfile(os.path.join(target, "index.json")):
        with open(os.path.join(target, "index.json")) as f:
            for parent in json.load(f).get("parents") or []:
                remove_tree(parent)
    if os.path.isdir(target):
        shutil.rmtree(target)
    if os.path.islink(stash):
        os.unlink(stash)
        scratch = os.path.dirname(target)  # SCRATCH/ID, made by the wrapper for this checkpoint
        if os.path.isdir(scratch) and not os.listdir(scratch):
            os.rmdir(scratch)


class PageIndex:
    """Where each lazy page of a split checkpoint is in its original pages files (the stash)."""

    def __init__(self, image_dir):
        self.stash = _stash(image_dir)
        with open(os.path.join(self.stash, "index.json")) as f:
            index = json.load(f)
        index.pop("parents", None)
        # [start, pages, offset(, file)]: a range names its file when a pre-dump holds it, else the stash's is its
        self.ranges = {int(pid): sorted((r[0], r[1], r[2], r[3] if len(r) > 3 else os.path.join(self.stash, one["pages"]))
                                        for r in one["ranges"]) for pid, one in index.items()}

    def lookup(self, pid, vaddr, nr_pages):
        """(pages file, offset, pages) for NR_PAGES at VADDR of PID, clamped to the end of their range; or None."""
        for start, nr, offset, path in self.ranges.get(pid, ()):
            if start <= vaddr < start + nr * PAGE_SIZE:
                skip = (vaddr - start) // PAGE_SIZE
                return path, offset + skip * PAGE_SIZE, min(nr_pages, nr - skip)
        return None


def _recv_exact(chan, size):
    buf = b""
    while len(buf) < size:
        block = chan.recv(size - len(buf))
        if not block:
            return None
        buf += block
    return buf


def serve(chan, index, counts=None):
    """Answer a lazy-pages daemon on CHAN (a socket or an SSH channel: recv, sendall) from INDEX until it closes.
    True when it said it is done (it holds every page), False when the connection ended without that. COUNTS,
    a dict, gets the pages and requests served."""
    counts = counts if counts is not None else {}
    files = {}
    try:
        while True:
            head = _recv_exact(chan, _PSI.size)
            if head is None:
                return False
            cmd, nr, vaddr, pid = _PSI.unpack(head)
            if cmd in (PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE):
                chan.sendall(struct.pack("<i", 0))
                return True
            found = index.lookup(pid, vaddr, nr) if cmd & 0xFFFF == PS_IOV_GET else None
            if found is None:
                return False  # CRIU's own server ends the connection too: the daemon then fails, loudly
            path, offset, count = found
            if path not in files:
                files[path] = os.open(path, os.O_RDONLY)
            data = os.pread(files[path], count * PAGE_SIZE, offset)
            chan.sendall(_PSI.pack(PS_IOV_ADD_F | (PE_PRESENT << 16), count, vaddr, pid) + data)
            counts["pages"] = counts.get("pages", 0) + count
            counts["requests"] = counts.get("requests", 0) + 1
    finally:
        for fd in files.values():
            os.close(fd)


_SYS_PIDFD_GETFD, _SYS_KCMP, _KCMP_FILE = 438, 312, 0  # x86_64 (pidfd_getfd's number is the same everywhere)
_UFFD_LINK = "anon_inode:[userfaultfd]"


def _userfaultfds(pid, proc="/proc"):
    """The descriptor numbers of process PID that are userfaultfds."""
    out = []
    for name in os.listdir("%s/%d/fd" % (proc, pid)):
        try:
            if os.readlink("%s/%d/fd/%s" % (proc, pid, name)) == _UFFD_LINK:
                out.append(int(name))
        except OSError:
            pass
    return sorted(out)


def _syscall(number, *args):
    import ctypes  # pylint: disable=import-outside-toplevel
    libc = ctypes.CDLL(None, use_errno=True)
    got = libc.syscall(number, *args)
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return got


def _same_file(pid, fd, own_fd):
    """Whether descriptor FD of process PID and this process's OWN_FD are one open file (kcmp)."""
    try:
        return _syscall(_SYS_KCMP, pid, os.getpid(), _KCMP_FILE, fd, own_fd) == 0
    except OSError:
        return False


def lazy_ranges(image_dir):
    """{pid: [[start, end, image address]]} of the pages of IMAGE_DIR's checkpoint restored lazily."""
    out = {}
    for pid in _pids(image_dir):
        rows = [[v, v + nr * PAGE_SIZE, v] for _raw, v, nr, flags, _o in _plan(image_dir, pid)[3] if flags & PE_LAZY]
        if rows:
            out[pid] = rows
    return out


def _text(path):
    """The stripped text of the file at PATH, "" when there is none."""
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _wait_exit(pidfd, timeout=None):
    import select  # pylint: disable=import-outside-toplevel
    return bool(select.select([pidfd], [], [], timeout)[0])


def _write_json(path, data):
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(path + ".tmp", path)


def _take(daemon, daemon_fd, held, retired, proc="/proc"):
    """One look at the daemon's userfaultfds: those HELD ({daemon's descriptor: this process's}) lacks taken; one
    whose number the daemon reused for another taken, the old one kept in RETIRED (none is let go before the end:
    a dying daemon's table empties before it is seen gone). OSError when one cannot be taken."""
    for fd in _userfaultfds(daemon, proc):
        if fd in held and _same_file(daemon, fd, held[fd]):
            continue
        mine = _syscall(_SYS_PIDFD_GETFD, daemon_fd, fd, 0)
        if fd in held:
            retired.append(held[fd])
        held[fd] = mine


def _follow(daemon, daemon_fd, held, retired, proc="/proc"):
    """HELD kept up with the daemon's userfaultfds until it ends (_take): those of processes forked during the fill
    taken as they come."""
    while not _wait_exit(daemon_fd, 0.05):
        try:
            _take(daemon, daemon_fd, held, retired, proc)
        except OSError:
            continue  # ending, or one gone as it was taken: the next look tells


def _hold(daemon, daemon_fd, expected, retired, settle, proc="/proc"):
    """{daemon's descriptor: this process's} of its userfaultfds, once EXPECTED are there (or SETTLE s passed)."""
    held, deadline = {}, time.time() + settle
    while len(held) < expected and time.time() < deadline and not _wait_exit(daemon_fd, 0):
        _take(daemon, daemon_fd, held, retired, proc)
        if len(held) < expected:
            time.sleep(0.01)
    return held


def keep(base, image_dir, pid_file, proc="/proc", settle=5.0):
    """Hold a second reference to each userfaultfd of a lazy restore's daemon (its pid in BASE.pid, its status
    in BASE.rc), so that the restored process never reads zeros where its pages were: the kernel unregisters a
    userfaultfd's ranges once its last reference closes, and the process then faults in empty pages (Redis
    crashed so here). If the daemon dies before every page is in, the keeper finishes the fill itself, from the
    page server the request BASE.request names (``remote ADDRESS PORT TOKEN``; see finish); BASE.finish says how
    it went. A fill it cannot finish stalls: the fds are held until the restored process is gone.

    Started with the restore: it reads IMAGE_DIR's lazy ranges (the engine removes the directory after the
    restore), waits for the restored process (its pid in PID_FILE, which the runtime writes once the restore is
    done), then takes the daemon's userfaultfds (BASE.kept says how many of how many), and those of processes
    forked during the fill as they come. When the daemon ends with status 0 (every page in), they are let go.
    Returns the exit status."""
    daemon = int(_text(base + ".pid"))
    request, lazy = _text(base + ".request").split(), lazy_ranges(image_dir)
    daemon_fd = os.pidfd_open(daemon)
    restored = None
    while restored is None:
        if _wait_exit(daemon_fd, 0.01):
            return 0  # the fill ended (or the restore failed and it was stopped): nothing to hold
        text = _text(pid_file)
        restored = int(text) if text.isdigit() else None
    retired = []
    held = _hold(daemon, daemon_fd, len(lazy), retired, settle, proc)
    _write_json(base + ".kept", {"held": len(held), "expected": len(lazy)})
    _follow(daemon, daemon_fd, held, retired, proc)
    for _i in range(100):  # the daemon's status follows its exit
        if os.path.exists(base + ".rc"):
            break
        time.sleep(0.05)
    filled = _text(base + ".rc") == "0"
    if not filled and len(request) == 4 and held:
        filled = _finish_recorded(base, request, held, restored, lazy, proc)
    if not filled:
        _wait_exit(os.pidfd_open(restored))
    for fd in list(held.values()) + retired:
        os.close(fd)
    return 0 if filled else 1


def _finish_recorded(base, request, held, restored, lazy, proc):
    """finish, its outcome in BASE.finish ({state: finishing, done or failed, ...}); True once done."""
    _write_json(base + ".finish", {"state": "finishing"})
    start = time.time()
    try:
        log = _text(base + ".log")
        named = set(int(m.group(2) or m.group(5)) for m in map(_LOG.search, log.splitlines())
                    if m and (m.group(2) or m.group(5)))
        unknown = sorted(set(held) - named)
        if unknown:  # one it cannot tell would be let go unfilled: hold them all instead
            raise ValueError("the daemon's log does not say whose userfaultfd %s is"
                             % ", ".join(str(fd) for fd in unknown))
        source = PageSource(request[1], int(request[2]), request[3])
        fds = replay_log(log, lazy)
        pages = finish({held[fd]: one for fd, one in fds.items() if fd in held}, source, restored, proc)
        source.close()
    except (OSError, ValueError, struct.error) as e:
        _write_json(base + ".finish", {"state": "failed", "detail": str(e) or type(e).__name__})
        return False
    _write_json(base + ".finish", {"state": "done", "pages": pages, "seconds": round(time.time() - start, 3)})
    return True


# The fill taken over from a daemon that died: userfaultfd's ABI on x86_64, and what CRIU's daemon logs (-v4)
_UFFDIO_UNREGISTER, _UFFDIO_WAKE, _UFFDIO_COPY, _UFFDIO_ZEROPAGE = 0x8010AA01, 0x8010AA02, 0xC028AA03, 0xC020AA04
_EV_PAGEFAULT, _EV_FORK, _EV_REMAP, _EV_REMOVE, _EV_UNMAP = 0x12, 0x13, 0x14, 0x15, 0x16
_MSG = struct.Struct("<B7xQQQ")  # struct uffd_msg: its event, then its argument's three u64
_USER_SPAN = (0x10000, 0x7FFFFFFFF000)  # mmap_min_addr up to the end of x86_64's user addresses
_FILL_CHUNK = 256 * PAGE_SIZE
_LOG = re.compile(r"Received PID: (\d+), uffd: (\d+)$|(\d+)-(\d+): (?:FORK: child with ufd=(\d+)|(EXIT)|"
                  r"REMAP: ([0-9a-f]+) -> ([0-9a-f]+) \((\d+)\)|(?:REMOVE|UNMAP): ([0-9a-f]+)\(([0-9a-f]+)\))$")


def _cut(ranges, start, end):
    """RANGES ([[start, end, image address]]) split at [START, END): (what is outside, what is inside)."""
    out, cut = [], []
    for s, e, img in ranges:
        if e <= start or s >= end:
            out.append([s, e, img])
            continue
        if s < start:
            out.append([s, start, img])
        if e > end:
            out.append([end, e, img + (end - s)])
        lo, hi = max(s, start), min(e, end)
        cut.append([lo, hi, img + (lo - s)])
    return out, cut


def _remap(ranges, frm, to, length):
    """RANGES after the process moved LENGTH bytes at FRM to TO (mremap)."""
    out, moved = _cut(ranges, frm, frm + length)
    return sorted(out + [[s - frm + to, e - frm + to, img] for s, e, img in moved])


def replay_log(text, lazy):
    """What a dead lazy-pages daemon's log (CRIU at -v4) says of the userfaultfds it held at its end: {its descriptor
    number: [pid in the images, [[start, end, image address]] of the lazy pages it may still lack]}. LAZY:
    lazy_ranges of the images. The pages it copied in need not be known: copying over them fails (EEXIST) and
    is skipped; what matters is where pages moved (REMAP), went (REMOVE, UNMAP) and which processes forked."""
    fds = {}
    for line in text.splitlines():
        m = _LOG.search(line)
        if m is None:
            continue
        if m.group(1):
            fds[int(m.group(2))] = [int(m.group(1)), [list(r) for r in lazy.get(int(m.group(1)), ())]]
            continue
        fd = int(m.group(4))
        if fd not in fds:
            continue
        pid, ranges = fds[fd]
        if m.group(5):
            fds[int(m.group(5))] = [pid, [list(r) for r in ranges]]
        elif m.group(6):
            del fds[fd]
        elif m.group(7):
            fds[fd][1] = _remap(ranges, int(m.group(7), 16), int(m.group(8), 16), int(m.group(9)))
        else:
            start = int(m.group(10), 16)
            fds[fd][1] = _cut(ranges, start, start + int(m.group(11), 16))[0]
    return fds


class PageSource:
    """A client of the source's page server (Sender's, CRIU's protocol) for a fill taken over: it opens with the
    run's TOKEN, as the daemon's first connection need not. Connects again while the server is not answering
    yet (it serves one connection at a time), up to WAIT s."""

    def __init__(self, address, port, token, wait=60.0):
        import socket  # pylint: disable=import-outside-toplevel
        self.sock, deadline = None, time.time() + wait
        while self.sock is None:
            sock = socket.create_connection((address, port), timeout=30)
            try:
                sock.sendall(token.encode("ascii") + b"\n")
                if sock.recv(3) == b"ok\n":
                    self.sock = sock
                    break
            except OSError:  # closed, or reset: not taken (yet)
                pass
            sock.close()
            if time.time() > deadline:
                raise OSError("the source's page server did not take the fill's connection")
            time.sleep(0.5)

    def get(self, pid, vaddr, nr):
        """NR pages of PID at VADDR of its images."""
        out = []
        while nr > 0:
            self.sock.sendall(_PSI.pack(PS_IOV_GET, nr, vaddr, pid))
            head = _recv_exact(self.sock, _PSI.size)
            _cmd, count, _vaddr, _pid = _PSI.unpack(head or b"\0" * _PSI.size)
            data = _recv_exact(self.sock, count * PAGE_SIZE) if head and count else None
            if not data:
                raise OSError("the source's page server has no pages at %#x of process %d" % (vaddr, pid))
            out.append(data)
            nr, vaddr = nr - count, vaddr + count * PAGE_SIZE
        return b"".join(out)

    def close(self):
        """Tell the server every page is in (it then lets them go), and close."""
        self.sock.sendall(_PSI.pack(PS_IOV_CLOSE, 0, 0, 0))
        _recv_exact(self.sock, 4)
        self.sock.close()


def finish(uffds, source, restored, proc="/proc"):
    """Fill in what a dead daemon left: UFFDS {held userfaultfd: [pid in the images, ranges it may lack]}, the
    pages from SOURCE (PageSource), RESTORED the restored process's host pid. The sleepers the daemon left are
    woken to fault again; the faults, forks, moves and removals that come are handled as CRIU's daemon does,
    between chunks of the background copy. Returns the pages copied in."""
    fill = _Fill(uffds, source, _host_pids(restored, proc), proc)
    for fd in uffds:
        _nonblocking(fd)
        fill.ioctl(fd, _UFFDIO_WAKE, struct.pack("<QQ", _USER_SPAN[0], _USER_SPAN[1] - _USER_SPAN[0]))
    try:
        while fill.step():
            pass
    finally:
        for fd in fill.forked:  # its own (a fork's event gave them): a process blocked on one goes on once closed
            os.close(fd)
    return fill.pages


def _nonblocking(fd):
    import fcntl  # pylint: disable=import-outside-toplevel
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _host_pids(restored, proc="/proc"):
    """{pid in the container's namespace: host pid} of the processes in RESTORED's pid namespace."""
    ns, out = os.readlink("%s/%d/ns/pid" % (proc, restored)), {}
    for name in os.listdir(proc):
        try:
            if name.isdigit() and os.readlink("%s/%s/ns/pid" % (proc, name)) == ns:
                with open("%s/%s/status" % (proc, name)) as f:
                    nspid = [line.split()[-1] for line in f if line.startswith("NSpid:")]
                out[int(nspid[0])] = int(name)
        except (OSError, IndexError, ValueError):
            pass
    return out


class _Fill:
    """The state of a fill taken over (see finish)."""

    def __init__(self, uffds, source, host_pids, proc):
        self.uffds, self.source, self.pages = {fd: [p, list(r)] for fd, (p, r) in uffds.items()}, source, 0
        self.inflight = []  # (fd, start, end) being copied in: a fault there waits for the copy, it is not zeroed
        self.forked = []  # the userfaultfds fork events gave this process
        self.pagemaps = {}  # the restored processes' pagemaps: pages there already are not fetched. Not for a pid
        pids = [p for p, _r in self.uffds.values()]  # forked during the fill (its children have their own memory)
        for fd, (pid, _r) in self.uffds.items():
            if pid in host_pids and pids.count(pid) == 1:
                self.pagemaps[fd] = os.open("%s/%d/pagemap" % (proc, host_pids[pid]), os.O_RDONLY)

    def ioctl(self, fd, request, arg):
        """(0, ARG after the call) or (errno, ARG after the call)."""
        import fcntl  # pylint: disable=import-outside-toplevel
        buf = bytearray(arg)
        try:
            fcntl.ioctl(fd, request, buf, True)
        except OSError as e:
            return e.errno, buf
        return 0, buf

    def step(self):
        """The events waiting handled, then a chunk copied in; False once no userfaultfd lacks a page."""
        self._events()
        for fd, (_pid, ranges) in sorted(self.uffds.items()):
            if ranges:
                s, e, img = ranges[0]
                e = min(e, s + _FILL_CHUNK)
                self.uffds[fd][1] = _cut(ranges, s, e)[0]
                for lo, hi in self._absent(fd, s, e):
                    self._copy(fd, [lo, hi, img + lo - s])
                return True
        return False

    def _absent(self, fd, start, end):
        """The runs of [START, END) not in memory yet, as far as the process's pagemap tells (all without one)."""
        if fd not in self.pagemaps:
            return [(start, end)]
        import array  # pylint: disable=import-outside-toplevel
        entries = array.array("Q")
        entries.frombytes(os.pread(self.pagemaps[fd], (end - start) // PAGE_SIZE * 8, start // PAGE_SIZE * 8))
        runs, first = [], None
        for i, entry in enumerate(entries):
            if not entry >> 62 and first is None:
                first = i
            elif entry >> 62 and first is not None:
                runs.append((start + first * PAGE_SIZE, start + i * PAGE_SIZE))
                first = None
        if first is not None:
            runs.append((start + first * PAGE_SIZE, end))
        return runs

    def _copy(self, fd, piece):
        """PIECE ([start, end, image address]) fetched and copied in; pages there already (EEXIST) or no longer
        registered (ENOENT, page by page: a copy that spans two mappings fails so too) skipped; while an event is
        pending (EAGAIN: the mappings change) the events are read first; a process gone ends its fill."""
        import ctypes  # pylint: disable=import-outside-toplevel
        start, end, img = piece
        buf = ctypes.create_string_buffer(self.source.get(self.uffds[fd][0], img, (end - start) // PAGE_SIZE))
        done, single = 0, False
        self.inflight.append((fd, start, end))
        try:
            while start + done < end and fd in self.uffds:
                length = PAGE_SIZE if single else end - start - done
                arg = struct.pack("<QQQQq", start + done, ctypes.addressof(buf) + done, length, 0, 0)
                err, out = self.ioctl(fd, _UFFDIO_COPY, arg)
                copied = struct.unpack_from("<q", out, 32)[0]
                if err in (errno.ESRCH, errno.ENOSPC):
                    self.uffds[fd][1] = []
                    return
                if err and err not in (errno.EEXIST, errno.ENOENT, errno.EAGAIN):
                    raise OSError(err, "UFFDIO_COPY at %#x: %s" % (start + done, os.strerror(err)))
                if err == errno.ENOENT and not single:
                    single = True
                    continue
                if err == errno.EAGAIN and copied <= 0:
                    if not self._events():
                        time.sleep(0.001)
                    continue
                step = length if not err else copied if copied > 0 else PAGE_SIZE
                self.pages += step // PAGE_SIZE if not err or copied > 0 else 0
                done += step
        finally:
            self.inflight.remove((fd, start, end))

    def _events(self):
        """The events waiting on every userfaultfd handled; whether there were any."""
        import select  # pylint: disable=import-outside-toplevel
        ready = select.select(list(self.uffds), [], [], 0)[0]
        for fd in ready:
            if fd in self.uffds:
                self._event(fd)
        return bool(ready)

    def _event(self, fd):
        try:
            raw = os.read(fd, _MSG.size)
        except BlockingIOError:
            return
        except OSError:
            raw = b""
        if len(raw) != _MSG.size:  # its process is gone
            self.uffds.pop(fd)
            return
        event, a, b, c = _MSG.unpack(raw)
        pid, ranges = self.uffds[fd]
        if event == _EV_PAGEFAULT:
            page = b & ~(PAGE_SIZE - 1)
            rest, hit = _cut(ranges, page, page + PAGE_SIZE)
            self.uffds[fd][1] = rest
            if hit:
                self._copy(fd, hit[0])
            elif any(f == fd and lo <= page < hi for f, lo, hi in self.inflight):
                pass  # being copied in: that copy wakes it
            else:  # not in the images: CRIU's daemon maps the zero page there
                self.ioctl(fd, _UFFDIO_ZEROPAGE, struct.pack("<QQQq", page, PAGE_SIZE, 0, 0))
        elif event == _EV_FORK:
            _nonblocking(a & 0xFFFFFFFF)
            self.forked.append(a & 0xFFFFFFFF)
            self.uffds[a & 0xFFFFFFFF] = [pid, [list(r) for r in ranges]]
        elif event == _EV_REMAP:
            self.uffds[fd][1] = _remap(ranges, a, b, c)
        elif event in (_EV_REMOVE, _EV_UNMAP):
            if event == _EV_REMOVE:  # as CRIU's daemon: no fault of that range comes here any more
                self.ioctl(fd, _UFFDIO_UNREGISTER, struct.pack("<QQ", a, b - a))
            self.uffds[fd][1] = _cut(ranges, a, b)[0]


def main(argv=None):
    """``pages.py split IMAGE_DIR [HOME]`` or ``pages.py unsplit IMAGE_DIR``: the runtime wrapper's helper.
    Prints JSON; exit 1 on failure."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keep"] and len(argv) == 4:
        try:
            return keep(*argv[1:])
        except (OSError, ValueError, SplitError, IndexError, struct.error) as e:
            sys.stdout.write("keep: %s\n" % e)
            return 1
    if not (argv[:1] == ["split"] and len(argv) in (2, 3) or argv[:1] == ["unsplit"] and len(argv) == 2):
        sys.stderr.write("usage: pages.py split IMAGE_DIR [HOME] | unsplit IMAGE_DIR | keep BASE IMAGE_DIR PID_FILE\n")
        return 2
    try:
        if argv[0] == "split":
            home = argv[2] if len(argv) == 3 else None
            result = dict(split(argv[1], home), image_dir=home or argv[1])
        else:
            result = {"unsplit": unsplit(argv[1])}
    except (SplitError, OSError) as e:
        sys.stdout.write(json.dumps({"error": str(e)}) + "\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
