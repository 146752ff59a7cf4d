# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The migration journal: an append-only record of every step, durable the moment it is written.

Two kinds of file use the same format (one JSON object a line, each line fsynced):

- the controller's journal, ``JOURNAL_DIR/STACK.journal``, with a lock file beside it
  (``STACK.lock``) that allows one run per stack at a time;
- a marker on each host of the migration, ``ARCHIVE_DIR/STACK.journal``, where the host's
  window call records what it did (fenced, checkpointed, sent, restored, ready, committed, removed)
  as it does it.

A record is ``{"t": epoch, "run": RUN_ID, "step": STEP, "service": NAME?, ...}``.
``fold`` turns the records of a run into the state the roles decide on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "SERVICE_STEPS", "RUN_STEPS", "JournalError", "LockHeld", "new_run_id", "Journal", "fold", "controller_pid",
    "LEASE", "holder_alive", "Lock", "renew_while_alive", "start_renewer", "mount_point", "JOURNAL_SPEC",
    "journal_task",
]

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import NOFOLLOW, fsync_dir, open_nofollow
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec

# Steps in the order a service goes through them in a migration.
SERVICE_STEPS = ("fenced", "checkpointed", "sent", "restored", "ready", "committed",
                 "removed", "unfenced", "rolled_back")
# Steps of the whole run.
RUN_STEPS = ("begin", "resumed", "committing", "committed", "rolling_back", "rolled_back", "refused", "end")


class JournalError(StackliftError):
    """The journal or the lock could not be read or written."""


class LockHeld(JournalError):
    def __init__(self, msg, holder):
        super().__init__(msg, holder=holder)
        self.holder = holder


def new_run_id():
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Journal:
    """An append-only JSON-lines file; every append is fsynced before it returns."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, step, run=None, service=None, **data):
        rec = {"t": round(time.time(), 6), "step": step}
        if run:
            rec["run"] = run
        if service:
            rec["service"] = service
        rec.update(data)
        line = (json.dumps(rec, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            d = os.path.dirname(os.path.abspath(self.path))
            new_dir = not os.path.isdir(d)
            if new_dir:
                os.makedirs(d, 0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | NOFOLLOW, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new_dir:
                fsync_dir(d)
        return rec

    def records(self, run=None):
        """Every record (of RUN, when given); a torn last line (a crash mid-write) is ignored."""
        if not os.path.exists(self.path):
            return []
        out = []
        with open_nofollow(self.path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw.decode("utf-8"))
                except ValueError:
                    continue
                if isinstance(rec, dict) and (run is None or rec.get("run") == run):
                    out.append(rec)
        return out

    def last_run(self):
        """The run ID of the newest record, or None."""
        recs = self.records()
        return recs[-1].get("run") if recs else None


def fold(records):
    """The state of one run: {'run', 'steps': [run steps], 'services': {name: {step: record}}, 'status'}.

    status: 'open' (begun, not ended), 'committed', 'rolled_back', or 'none' (no records).
    """
    state = {"run": None, "steps": [], "services": {}, "status": "none"}
    for rec in records:
        state["run"] = rec.get("run") or state["run"]
        step = rec.get("step")
        if rec.get("service"):
            state["services"].setdefault(rec["service"], {})[step] = rec
        elif step in RUN_STEPS:
            state["steps"].append(step)
    steps = state["steps"]
    if "end" in steps:
        state["status"] = next((s for s in ("committed", "rolled_back", "refused") if s in steps), "ended")
    elif steps or state["services"]:
        state["status"] = "open"
    state["committing"] = "committing" in steps or "committed" in steps
    return state


# -- the lock -------------------------------------------------------------------------------------

def _proc_start(pid):
    """The start time of a process (clock ticks since boot), or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def controller_pid(pid=None):
    """The ansible-playbook (or ansible-runner) process this module runs under, else our own parent.

    Ansible runs a task in a fork of ansible-playbook (a worker that ends with the task), so the
    outermost such ancestor is the controller, not the first one found.
    """
    cur = pid or os.getpid()
    found = None
    for _depth in range(32):
        if cur <= 1:
            break
        cmd = _cmdline(cur)
        if "ansible-playbook" in cmd or "ansible-runner" in cmd:
            found = cur
        try:
            with open("/proc/%d/stat" % cur) as f:
                cur = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found or os.getppid()


# A lock names its controller's host and pid, and holds a lease: the time it expires unless renewed. A
# renewer (renew_while_alive, started with the lock) extends it while the controller process lives. On
# the controller's own host the pid tells at once whether the holder is gone; from another host (each AWX
# job runs in a pod of its own) only the lease can: a cancelled job's lock is stale LEASE seconds later.
LEASE = 90.0


def holder_alive(holder, hostname=None, proc_start=_proc_start, now=time.time):
    """Whether the process that holds a lock is still running (True when it cannot be told)."""
    if holder.get("host") != (hostname or socket.gethostname()):
        expires = holder.get("expires")
        # a lock without a lease (an older stacklift's): only its owner, or a break by hand, can end it
        return not isinstance(expires, (int, float)) or now() < expires
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    start = proc_start(pid)
    return start is not None and start == holder.get("pid_start")


class Lock:
    """One run per stack: a lock file made with O_EXCL, naming its holder, with a lease. Taking it,
    breaking a stale one and renewing it happen under a guard (flock), so two controllers breaking the
    same stale lock cannot both end up holding it."""

    def __init__(self, path):
        self.path = path

    @contextlib.contextmanager
    def _guarded(self):
        fd = os.open(self.path + ".guard", os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # gives the guard back

    def _write(self, record):
        tmp = "%s.%s.tmp" % (self.path, uuid.uuid4().hex[:8])
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600), "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def renew(self, run, pid):
        """Extend the lease of RUN's lock held by PID; False when the lock is no longer theirs."""
        with self._guarded():
            held = self.holder() or {}
            if held.get("run") != run or held.get("pid") != pid:
                return False
            self._write(dict(held, expires=round(time.time() + LEASE, 3)))
            return True

    def break_stale(self, run, alive=holder_alive):
        """Remove the lock of RUN once its holder is gone (its pid on this host, its lease elsewhere);
        returns the holder removed. Refuses a live holder, or a lock of another run."""
        with self._guarded():
            held = self.holder()
            if held is None:
                return None
            if held.get("run") != run:
                raise JournalError("the lock is held by run %s, not %s: not breaking it" % (held.get("run"), run))
            if alive(held):
                lease = held.get("expires")
                raise LockHeld("run %s is not gone: its controller (pid %s on %s) %s; not breaking its lock"
                               % (run, held.get("pid"), held.get("host"),
                                  "holds its lease until %s" % time.strftime("%H:%M:%S", time.localtime(lease))
                                  if isinstance(lease, (int, float)) else
                                  "runs, or cannot be asked (a lock without a lease: remove %s by hand once you "
                                  "are sure)" % self.path), held)
            os.unlink(self.path)
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            return held

    def holder(self):
        try:
            with open_nofollow(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def acquire(self, run, pid=None, break_stale=True, alive=holder_alive):
        """Take the lock for RUN. Returns the stale holder it replaced, or None. Raises LockHeld."""
        pid = pid or controller_pid()
        me = {"run": run, "pid": pid, "pid_start": _proc_start(pid), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "expires": round(time.time() + LEASE, 3)}
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            os.makedirs(d, 0o700)
        with self._guarded():
            return self._acquire(me, break_stale, alive)

    def _acquire(self, me, break_stale, alive):
        run, d = me["run"], os.path.dirname(os.path.abspath(self.path))
        stale = None
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
                if os.path.islink(self.path):
                    raise JournalError("%s is a symlink, not a stacklift lock; not following it (remove it)" % self.path)
                held = self.holder() or {}
                if alive(held):
                    if held.get("pid") == me["pid"] and held.get("host") == me["host"] and held.get("run") == run:
                        return None  # ours already (a task re-run in the same play)
                    raise LockHeld("stack is locked by run %s (pid %s on %s since %s); wait for it to end"
                                   % (held.get("run"), held.get("pid"), held.get("host"), held.get("since")),
                                   held)
                if not break_stale:
                    raise LockHeld("stack is locked by run %s, whose controller (pid %s on %s) is gone"
                                   % (held.get("run"), held.get("pid"), held.get("host")), held)
                stale = held
                os.unlink(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(d)
            return stale
        raise JournalError("could not take the lock %s" % self.path)

    def release(self, run):
        with self._guarded():
            return self._release(run)

    def _release(self, run):
        held = self.holder()
        if held and held.get("run") == run:
            os.unlink(self.path)
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            return True
        return False


def renew_while_alive(path, run, pid, pid_start, every=LEASE / 3, sleep=time.sleep):
    """Renew RUN's lease at PATH every EVERY seconds while the controller (PID, started PID_START) lives
    and the lock is still RUN's; return when either ends (the lease then runs out by itself)."""
    lock = Lock(path)
    while True:
        sleep(every)
        if _proc_start(pid) != pid_start or not lock.renew(run, pid):
            return


def start_renewer(path, run, pid):
    """A process of its own (this file run as a script, in a session of its own) that renews the lease
    while the controller lives. Only where this file is a file (the controller, not a module's zip)."""
    me = os.path.abspath(__file__)
    if not os.path.isfile(me):
        return None
    import subprocess
    import sys
    # The script imports the collection's other packages: give it the directory that holds ansible_collections.
    root = me
    for _part in __name__.split("."):  # ansible_collections.stacklift.migrate.plugins.module_utils._window.journal
        root = os.path.dirname(root)
    env = dict(os.environ)
    if os.path.isdir(os.path.join(root, "ansible_collections")):
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.Popen([sys.executable, me, "renew", path, run, str(pid), str(_proc_start(pid))],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            close_fds=True, start_new_session=True, env=env).pid


def mount_point(path, mountinfo="/proc/self/mountinfo"):
    """The mount point PATH lies on (the longest that contains it), as this process sees its mounts."""
    path = os.path.realpath(path)
    best = "/"
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                point = fields[4].encode().decode("unicode_escape") if len(fields) > 4 else "/"
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                    best = point
    except OSError:
        pass
    return best


# -- migration_journal's work, done the same way by its module and its action plugin -----------

JOURNAL_SPEC = ArgumentSpec(dict(
    stack=dict(type="str", required=True),
    journal_dir=dict(type="path", required=True),
    state=dict(type="str", default="show", choices=["begin", "record", "end", "release", "break", "show"]),
    run_id=dict(type="str"),
    records=dict(type="list", elements="dict", default=[]),
    outcome=dict(type="str", choices=["committed", "rolled_back", "refused"]),
), required_if=[("state", "record", ("run_id",)), ("state", "release", ("run_id",)),
                ("state", "end", ("run_id", "outcome")), ("state", "break", ("run_id",))])


def journal_task(p, check_mode=False, pid=None):
    """(failed, result) of a migration_journal task with the validated params P."""
    path = os.path.join(p["journal_dir"], "%s.journal" % p["stack"])
    journal = Journal(path)
    lock = Lock(os.path.join(p["journal_dir"], "%s.lock" % p["stack"]))
    out = dict(path=path, previous=None, run={}, run_id=p.get("run_id"), changed=False)

    def fail(msg, **extra):
        out.update(extra, msg=msg)
        return True, out
    try:
        if p["state"] in ("show", "begin"):
            last = journal.last_run()
            previous = fold(journal.records(last)) if last else None
            out["previous"] = previous if previous and previous["status"] == "open" else None
            out["holder"] = lock.holder()
            if p["state"] == "show" or check_mode:
                out.update(run_id=last, run=fold(journal.records(last)) if last else {})
                return False, out
            # A run a dead controller left open is resumed under its own ID (the hosts' markers
            # know it by that ID), to be finished or rolled back before a new run begins.
            run_id = out["previous"]["run"] if out["previous"] else new_run_id()
            try:
                lock.acquire(run_id, pid=pid)
            except LockHeld as e:
                return fail("stack %s: %s" % (p["stack"], e), run_id=None, holder=e.holder)
            journal.append("resumed" if out["previous"] else "begin", run=run_id)
            out["holder"] = lock.holder()
            out["lease_renewer"] = start_renewer(lock.path, run_id, out["holder"]["pid"])
            # in a container (an AWX job), a journal on its root file system is gone with it
            out["journal_mount_point"] = mount_point(p["journal_dir"])
        elif p["state"] == "break":
            try:
                broken = lock.break_stale(p["run_id"])
            except LockHeld as e:
                return fail("stack %s: %s" % (p["stack"], e), holder=e.holder)
            if broken is None:
                out.update(msg="stack %s is not locked" % p["stack"])
                return False, out
            journal.append("lock_broken", run=p["run_id"], holder=broken)
            run_id = p["run_id"]
        else:
            run_id = p["run_id"]
            held = lock.holder() or {}
            if held.get("run") != run_id:
                return fail("stack %s: run %s does not hold the lock (held by %s)"
                            % (p["stack"], run_id, held.get("run") or "nobody"))
            bad = [r for r in p["records"] if not r.get("step")]
            if bad:
                return fail("every record needs a step: %r" % (bad[0],))
            for rec in p["records"]:
                data = {k: v for k, v in rec.items() if k not in ("step", "run")}
                journal.append(rec["step"], run=run_id, **data)
            if p["state"] == "end":
                journal.append(p["outcome"], run=run_id)
                journal.append("end", run=run_id)
            if p["state"] in ("end", "release"):
                lock.release(run_id)
    except (JournalError, OSError) as e:
        return fail("journal %s: %s" % (path, e))
    out.update(changed=True, run_id=run_id, run=fold(journal.records(run_id)))
    return False, out


if __name__ == "__main__":  # start_renewer's process: journal.py renew PATH RUN PID PID_START
    import sys
    if len(sys.argv) == 6 and sys.argv[1] == "renew":
        renew_while_alive(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if sys.argv[5] != "None" else None)
