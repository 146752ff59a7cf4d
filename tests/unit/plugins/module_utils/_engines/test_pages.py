"""The split of a checkpoint's pages, checked on images written as CRIU writes them (protobuf entries after the
magic), and the page server answering CRIU's lazy-pages protocol over a socket pair. (The lab migrations run
the same code on CRIU's real images.)"""

import json
import os
import socket
import struct
import threading
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages
from ansible_collections.stacklift.migrate.tests.unit.fakes import (
    ENTRIES, LAZY, PRESENT, criu_checkpoint as checkpoint, entry, page, snapshot, write_dump, write_image)

PARENT = pages.PE_PARENT


def test_split_leaves_the_eager_pages_and_marks_the_rest_lazy_only(tmp_path):
    d = checkpoint(tmp_path)
    before = snapshot(d)
    summary = pages.split(str(d))
    assert summary == {"pids": [7], "lazy_bytes": 7 * pages.PAGE_SIZE}
    _head, raws = pages._read_image(str(d / "pagemap-7.img"))
    assert [pages._entry(r) for r in raws[1:]] == [(v, n, LAZY if f == LAZY | PRESENT else f) for v, n, f in ENTRIES]
    # the pages file keeps the stack's two pages and the data's one, in the pagemap's order
    assert (d / "pages-3.img").read_bytes() == page(0x10000, 0) + page(0x10000, 1) + page(0x900000, 0)
    stash = tmp_path / ("checkpoint" + pages.STASH_SUFFIX)
    assert (stash / "pages-3.img").read_bytes() == before["pages-3.img"]
    assert (d / pages.MARKER).exists() and pages.is_split(str(d))
    with pytest.raises(pages.SplitError):
        pages.split(str(d))
    assert pages.unsplit(str(d)) is True
    assert snapshot(d) == before and not stash.exists() and not pages.unsplit(str(d))


def test_a_checkpoint_that_cannot_be_split_is_left_as_it_was(tmp_path):
    d = checkpoint(tmp_path)
    with open(d / "pages-3.img", "ab") as f:
        f.write(b"x" * pages.PAGE_SIZE)  # more pages than the pagemap names
    before = snapshot(d)
    with pytest.raises(pages.SplitError, match="does not hold the pages"):
        pages.split(str(d))
    assert snapshot(d) == before and not pages.is_split(str(d))
    e = tmp_path / "e"
    e.mkdir()
    d2 = checkpoint(e, entries=[(0x1000, 1, pages.PE_PARENT)])  # pages in a pre-dump that is not there
    before = snapshot(d2)
    with pytest.raises(pages.SplitError, match="parent image that is not there"):
        pages.split(str(d2))
    assert snapshot(d2) == before and not pages.is_split(str(d2))


def test_the_index_finds_each_lazy_page_and_clamps_a_request_to_its_range(tmp_path):
    d = checkpoint(tmp_path)
    pages.split(str(d))
    index = pages.PageIndex(str(d))
    path, offset, count = index.lookup(7, 0x400000 + pages.PAGE_SIZE, 10)
    assert count == 2 and offset == 3 * pages.PAGE_SIZE  # after the stack's 2 pages and the range's first
    with open(path, "rb") as f:
        f.seek(offset)
        assert f.read(pages.PAGE_SIZE) == page(0x400000, 1)
    assert index.lookup(7, 0x10000, 1) is None  # eager: in the archive, never asked for
    assert index.lookup(8, 0x400000, 1) is None


def ask(sk, nr, vaddr, pid):
    sk.sendall(pages._PSI.pack(pages.PS_IOV_GET, nr, vaddr, pid))
    head = pages._recv_exact(sk, pages._PSI.size)
    cmd, got, at, who = pages._PSI.unpack(head)
    assert cmd == pages.PS_IOV_ADD_F | (PRESENT << 16) and (at, who) == (vaddr, pid)
    return pages._recv_exact(sk, got * pages.PAGE_SIZE)


def test_serve_answers_the_daemon_until_it_says_it_holds_everything(tmp_path):
    d = checkpoint(tmp_path)
    pages.split(str(d))
    ours, theirs = socket.socketpair()
    result, counts = {}, {}
    t = threading.Thread(target=lambda: result.setdefault("done", pages.serve(ours, pages.PageIndex(str(d)), counts)))
    t.start()
    assert ask(theirs, 1, 0x7f0000 + 3 * pages.PAGE_SIZE, 7) == page(0x7f0000, 3)
    assert ask(theirs, 8, 0x400000, 7) == b"".join(page(0x400000, i) for i in range(3))
    theirs.sendall(pages._PSI.pack(pages.PS_IOV_CLOSE, 0, 0, 0))
    assert struct.unpack("<i", pages._recv_exact(theirs, 4)) == (0,)
    t.join(10)
    assert result == {"done": True} and counts == {"pages": 4, "requests": 2}


@pytest.mark.parametrize("request_", ["unknown page", "hang up"])
def test_serve_ends_without_done_on_a_page_it_lacks_or_a_closed_connection(tmp_path, request_):
    d = checkpoint(tmp_path)
    pages.split(str(d))
    ours, theirs = socket.socketpair()
    if request_ == "unknown page":
        theirs.sendall(pages._PSI.pack(pages.PS_IOV_GET, 1, 0x10000, 7))
    theirs.close()
    assert pages.serve(ours, pages.PageIndex(str(d))) is False


def test_main_is_the_wrappers_helper(tmp_path, capsys):
    d = checkpoint(tmp_path)
    assert pages.main(["split", str(d)]) == 0
    assert '"image_dir": "%s"' % d in capsys.readouterr().out
    assert pages.main(["split", str(d)]) == 1 and "split already" in capsys.readouterr().out
    assert pages.main(["unsplit", str(d)]) == 0 and not pages.is_split(str(d))
    assert pages.main(["what"]) == 2


def test_a_checkpoint_written_to_scratch_moves_home_split_its_stash_left_in_scratch_and_linked(tmp_path):
    scratch, home = tmp_path / "shm" / "id", tmp_path / "userdata" / "checkpoint"
    scratch.mkdir(parents=True)
    d = checkpoint(scratch)
    before = snapshot(d)
    assert pages.split(str(d), str(home)) == {"pids": [7], "lazy_bytes": 7 * pages.PAGE_SIZE}
    assert not d.exists() and (home / pages.MARKER).exists() and pages.is_split(str(home))
    link = tmp_path / "userdata" / ("checkpoint" + pages.STASH_SUFFIX)
    assert link.is_symlink() and link.resolve() == (scratch / ("checkpoint" + pages.STASH_SUFFIX))
    assert pages.PageIndex(str(home)).lookup(7, 0x400000, 1)[0].startswith(str(link))
    # a restore in place: the originals copied back home, the scratch gone
    assert pages.unsplit(str(home)) is True
    assert snapshot(home) == before and not link.exists() and not scratch.exists()


def test_a_scratch_checkpoint_that_cannot_be_split_goes_home_whole(tmp_path):
    scratch, home = tmp_path / "shm" / "id", tmp_path / "checkpoint"
    scratch.mkdir(parents=True)
    d = checkpoint(scratch)
    with open(d / "pages-3.img", "ab") as f:
        f.write(b"x" * pages.PAGE_SIZE)
    before = snapshot(d)
    assert pages.main(["split", str(d), str(home)]) == 1
    assert snapshot(home) == before and not pages.is_split(str(home)) and not d.exists()


def test_discard_removes_the_served_pages_and_their_scratch(tmp_path):
    scratch, home = tmp_path / "shm" / "id", tmp_path / "checkpoint"
    scratch.mkdir(parents=True)
    pages.split(str(checkpoint(scratch)), str(home))
    pages.discard(str(home))
    assert not pages.is_split(str(home)) and not scratch.exists() and (home / "pagemap-7.img").exists()
    (tmp_path / "disk").mkdir()
    d = checkpoint(tmp_path / "disk")  # a stash on disk, beside its checkpoint
    pages.split(str(d))
    pages.discard(str(d))
    assert not pages.is_split(str(d)) and not (tmp_path / "disk" / ("checkpoint" + pages.STASH_SUFFIX)).exists()


def dump(d, entries, round_, parent=None):
    """A dump (or pre-dump) of process 7 into D: ENTRIES' present pages say ROUND_; PARENT its ``parent`` link."""
    d.mkdir(parents=True)
    write_dump(d, entries, mark=round_)
    if parent:
        os.symlink(parent, str(d / pages.PARENT_LINK))
    return d


def files(d):
    """D's files and where its parent link points."""
    return {n: os.readlink(str(d / n)) if (d / n).is_symlink() else (d / n).read_bytes() for n in sorted(os.listdir(d))}


def pre_copied(tmp_path):
    """Two pre-dumps and the final dump of a process: a stack (eager) and two lazy ranges, partly dirtied."""
    r1 = dump(tmp_path / "pre" / "1", [(0x10000, 2, PRESENT), (0x400000, 3, LAZY | PRESENT),
                                       (0x7f0000, 4, LAZY | PRESENT)], b"r1")
    dump(tmp_path / "pre" / "2", [(0x10000, 2, PARENT), (0x400000, 1, LAZY | PRESENT), (0x401000, 2, PARENT),
                                  (0x7f0000, 4, PARENT)], b"r2", parent="../1")
    final = dump(tmp_path / "checkpoint", [(0x10000, 1, PRESENT), (0x11000, 1, PARENT), (0x400000, 3, PARENT),
                                           (0x7f0000, 2, LAZY | PRESENT), (0x7f2000, 2, PARENT)], b"f",
                 parent=str(tmp_path / "pre" / "2"))
    return final, r1


def test_a_checkpoint_on_pre_dumps_is_split_with_its_lazy_pages_served_from_them(tmp_path):
    d, _r1 = pre_copied(tmp_path)
    before = files(d)
    assert pages.split(str(d)) == {"pids": [7], "lazy_bytes": 7 * pages.PAGE_SIZE}
    _head, raws = pages._read_image(str(d / "pagemap-7.img"))
    assert [pages._entry(r) for r in raws[1:]] == [
        (0x10000, 1, PRESENT), (0x11000, 1, PRESENT),  # the stack, its clean page taken from the first pre-dump
        (0x400000, 1, LAZY), (0x401000, 2, LAZY), (0x7f0000, 2, LAZY), (0x7f2000, 2, LAZY)]
    assert (d / "pages-3.img").read_bytes() == b"f" + page(0x10000, 0)[1:] + b"r1" + page(0x10000, 1)[2:]
    assert not (d / pages.PARENT_LINK).exists()  # the archive carries no link that would dangle on the target
    index = pages.PageIndex(str(d))
    for vaddr, i, round_ in ((0x400000, 0, b"r2"), (0x402000, 2, b"r1"), (0x7f1000, 1, b"f"), (0x7f3000, 3, b"r1")):
        path, offset, _count = index.lookup(7, vaddr, 1)
        with open(path, "rb") as f:
            f.seek(offset)
            assert f.read(pages.PAGE_SIZE) == round_ + page(vaddr - i * pages.PAGE_SIZE, i)[len(round_):], hex(vaddr)
    assert index.lookup(7, 0x400000, 8)[2] == 1  # a request ends where its pre-dump's range does
    # a restore in place gets the checkpoint back as CRIU wrote it, on its pre-dumps, which stay for it
    assert pages.unsplit(str(d)) is True
    assert files(d) == before and (tmp_path / "pre" / "1").is_dir()


def test_served_pages_are_discarded_with_the_pre_dumps_they_stood_on(tmp_path):
    d, _r1 = pre_copied(tmp_path)
    pages.split(str(d))
    assert pages.parents(str(d)) == []  # its link went into the stash
    pages.discard(str(d))
    assert not pages.is_split(str(d)) and not (tmp_path / "pre").exists()


def test_lazy_ranges_are_those_of_the_processes_with_lazy_pages(tmp_path):
    d = checkpoint(tmp_path)
    write_image(d / "pagemap-8.img", [b"\x08\x04", entry(0x1000, 1, PRESENT)])  # a process with no lazy page
    (d / "pages-4.img").write_bytes(page(0x1000, 0))
    pages.split(str(d))
    assert pages.lazy_ranges(str(d)) == {7: [[0x400000, 0x403000, 0x400000], [0x7f0000, 0x7f4000, 0x7f0000]]}


# What CRIU's lazy-pages daemon logs at -v4, the lines replay_log reads among others
DAEMON_LOG = """(00.001) Received PID: 1, uffd: 5
(00.002) 1-5: Found 3 VMAs in image
(00.003) Received PID: 9, uffd: 6
(00.004) 1-5: uffd_copy: 0x400000/4096
(00.005) 1-5: REMAP: 7f0000 -> 900000 (8192)
(00.006) 1-5: REMOVE: 401000(1000)
(00.007) 1-5: FORK: child with ufd=7
(00.008) 9-6: EXIT
(00.009) 1-7: UNMAP: 402000(1000)
(00.010) 1--6: excess message in queue: 0
"""


def test_a_dead_daemons_log_says_what_each_userfaultfd_it_held_may_still_lack():
    lazy = {1: [[0x400000, 0x403000, 0x400000], [0x7f0000, 0x7f4000, 0x7f0000]], 9: [[0x10000, 0x11000, 0x10000]]}
    assert pages.replay_log(DAEMON_LOG, lazy) == {
        # moved pages keep where they are in the images; removed ones are not filled again
        5: [1, [[0x400000, 0x401000, 0x400000], [0x402000, 0x403000, 0x402000], [0x7f2000, 0x7f4000, 0x7f2000],
                [0x900000, 0x902000, 0x7f0000]]],
        7: [1, [[0x400000, 0x401000, 0x400000], [0x7f2000, 0x7f4000, 0x7f2000], [0x900000, 0x902000, 0x7f0000]]]}


RESTORED = """import ctypes, fcntl, hashlib, mmap, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = libc.mremap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
fd = libc.syscall(323, os.O_CLOEXEC)  # userfaultfd(2), x86_64
mode = sys.argv[1] if sys.argv[1:] else ""  # and the events CRIU asks for (EVENT_FORK|REMAP|REMOVE|UNMAP) with one
fcntl.ioctl(fd, 0xC018AA3F, bytearray(struct.pack("<QQQ", 0xAA, 0x4E if mode else 0, 0)), True)  # UFFDIO_API
m = mmap.mmap(-1, 64 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
assert libc.madvise(ctypes.c_void_p(addr + 32 * 4096), 32 * 4096, 15) == 0  # MADV_NOHUGEPAGE: two mappings now
for i in range(1, 64, 4):  # in memory already: the dead daemon copied these in (a run of 3 lacking spans both)
    m[i * 4096:(i + 1) * 4096] = b"x" * 4096
fcntl.ioctl(fd, 0xC020AA00, bytearray(struct.pack("<QQQQ", addr, 64 * 4096, 1, 0)), True)  # UFFDIO_REGISTER, MISSING
print(addr, fd, flush=True)
sys.stdin.readline()  # the keeper holds it now
os.close(fd)
middle = addr + 32 * 4096  # pages 32-47; each of these waits until the keeper reads its event
if mode == "remove":  # then those pages are the kernel's zeros, never the images'
    assert libc.madvise(ctypes.c_void_p(addr + 48 * 4096), 8 * 4096, 4) == 0
if mode == "remap":  # moved elsewhere (MREMAP_MAYMOVE|FIXED onto a reservation): their pages follow them
    spot = libc.mmap(None, 16 * 4096, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    middle = libc.mremap(ctypes.c_void_p(middle), 16 * 4096, 16 * 4096, 3, ctypes.c_void_p(spot))
    assert middle == spot
if mode == "fork" and os.fork():  # the child (its memory lacks the same pages) says first
    os.wait()
print(ctypes.string_at(middle + 10 * 4096, 8).decode(), hashlib.sha256(  # waits on its fault
    m[:32 * 4096] + ctypes.string_at(middle, 16 * 4096) + m[48 * 4096:]).hexdigest(), flush=True)
"""


class Source:
    def __init__(self):
        self.asked = []

    def get(self, pid, vaddr, nr):
        self.asked.append((pid, vaddr, nr))
        return b"".join(page(vaddr + i * 4096, 0) for i in range(nr))


@pytest.mark.parametrize("mode", ["", "remove", "remap", "fork"])
def test_the_keeper_finishes_a_fill_from_the_source_skipping_the_pages_there_already(mode):
    """A real userfaultfd (as root, x86_64): a process whose memory lacks 48 of 64 pages in two mappings (one
    range of the images: a copy across both fails, ENOENT), stalled on one of them; finish serves the fault and
    copies the rest in, each from where it is in the images, and fetches none of the pages in memory already.
    remove: the process drops 8 pages (MADV_DONTNEED) as the fill is taken over: they read zeros, not the images'.
    remap: it moves 16 pages elsewhere (mremap): they get the pages of where they were.
    fork: it forks: the child's memory, lacking the same pages, is filled too."""
    import hashlib
    import subprocess
    import sys
    restored = subprocess.Popen([sys.executable, "-c", RESTORED] + ([mode] if mode else []),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        addr, fd = (int(x) for x in restored.stdout.readline().split())
        mine = pages._syscall(pages._SYS_PIDFD_GETFD, os.pidfd_open(restored.pid), fd, 0)
        restored.stdin.write("\n")
        restored.stdin.flush()
        time.sleep(0.3)  # it faults (or changes its mappings first), and waits
        source = Source()
        copied = pages.finish({mine: [restored.pid, [[addr, addr + 64 * 4096, 0x400000]]]}, source, restored.pid)
        os.close(mine)
        dropped = range(48, 56) if mode == "remove" else ()
        want = b"".join(b"\0" * 4096 if i in dropped else b"x" * 4096 if i % 4 == 1 else page(0x400000 + i * 4096, 0)
                        for i in range(64))
        for _process in range(2 if mode == "fork" else 1):
            import select
            assert select.select([restored.stdout], [], [], 20)[0], "a process of it stalled: a fault nobody served"
            first, digest = restored.stdout.readline().split()
            assert first == "42a000+0" and digest == hashlib.sha256(want).hexdigest()
        if mode == "fork":  # the child's pages all asked for (its pagemap is not read), the parent's as before
            assert copied == 96 and sum(nr for _p, _v, nr in source.asked) == 48 + 64
        else:
            assert copied == sum(nr for _p, _v, nr in source.asked) == (42 if mode == "remove" else 48)
        assert all(p == restored.pid for p, _v, _n in source.asked)
    finally:
        if restored.poll() is None:
            restored.kill()
        restored.wait()


DAEMON = """import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(323, os.O_CLOEXEC)  # userfaultfd(2), x86_64
print(fd, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("rc, holds_until_gone", [("0", False), ("137", True)])
def test_the_keeper_holds_the_daemons_userfaultfd_until_the_fill_ends_or_the_process_is_gone(
        tmp_path, rc, holds_until_gone):
    """A real userfaultfd in a stand-in daemon (a child, as root, x86_64): the keeper takes it with
    pidfd_getfd, lets it go when the daemon exits 0, and otherwise holds it until the restored process is gone."""
    import subprocess
    import sys
    import threading
    d = checkpoint(tmp_path)  # one process with lazy pages: one userfaultfd to hold
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON], stdout=subprocess.PIPE, text=True)
    restored = subprocess.Popen(["sleep", "60"])
    try:
        assert int(daemon.stdout.readline()) >= 0, "userfaultfd(2) failed: the tests run as root on x86_64"
        base = str(tmp_path / "cid")
        with open(base + ".pid", "w") as f:
            f.write("%d\n" % daemon.pid)
        pid_file = tmp_path / "pidfile"
        result = {}
        keeper = threading.Thread(target=lambda: result.setdefault("rc", pages.keep(base, str(d), str(pid_file))))
        keeper.start()
        time.sleep(0.2)
        assert not os.path.exists(base + ".kept")  # the restore is not done: its pid file is not there
        pid_file.write_text("%d\n" % restored.pid)
        for _i in range(200):
            if os.path.exists(base + ".kept"):
                break
            time.sleep(0.02)
        with open(base + ".kept") as f:
            assert json.load(f) == {"held": 1, "expected": 1}
        daemon.kill()
        daemon.wait()
        with open(base + ".rc", "w") as f:
            f.write(rc + "\n")
        keeper.join(3 if holds_until_gone else 10)  # a loaded machine once took over 3 s to let go
        assert keeper.is_alive() is holds_until_gone
        restored.kill()
        restored.wait()
        keeper.join(5)
        assert not keeper.is_alive() and result["rc"] == (1 if holds_until_gone else 0)
    finally:
        for p in (daemon, restored):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("log, unknown", [("", "5, 6"), ("(00.001) Received PID: 1, uffd: 5\n", "6")])
def test_a_fill_is_not_finished_when_the_daemons_log_does_not_name_every_userfaultfd_held(tmp_path, log, unknown):
    """Finished without knowing whose a userfaultfd is, the keeper would let it go unfilled (its process then reads
    zeros): it records the failure, and holds them all (the process stalls)."""
    base = str(tmp_path / "cid")
    with open(base + ".log", "w") as f:
        f.write(log)
    request = ["remote", "127.0.0.1", "1", "ab" * 16]  # never reached: refused before any connection
    assert pages._finish_recorded(base, request, {5: 105, 6: 106}, os.getpid(), {}, "/proc") is False
    with open(base + ".finish") as f:
        assert json.load(f) == {"state": "failed", "detail": "the daemon's log does not say whose userfaultfd %s is"
                                                             % unknown}
