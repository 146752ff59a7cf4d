# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lazy restore (post-copy) under Podman: an OCI runtime wrapper, its installation, and the state of a fill.

Podman has no lazy option, but it runs whatever binary ``containers.conf`` names for its runtime. The
wrapper (``WRAPPER``, POSIX sh) hands every call to the host's own runc unchanged, except a ``restore`` of a
container stacklift asked for (a request file named by the container's ID in ``REQUEST_DIR``): for that one
it starts ``criu lazy-pages`` on the checkpoint's images, waits for its socket, and adds ``--lazy-pages``.
The process tree then runs at once, and the daemon fills its memory from the images in the background. The
daemon's exit status lands beside the request, so ``fill_state`` tells filling, resident and failed apart.

The daemon holds the only reference to each restored process's userfaultfd, and the kernel unregisters its
ranges once that closes: a daemon that died mid-fill left the process faulting in empty pages where its own
had not arrived (Redis crashed so here, after the commit). So a keeper (``pages.keep``) holds a second
reference from the restore on, until the fill ends: a fill that dies leaves a stalled process instead, and
the target's probe refuses a copy whose keeper does not hold them all (``hold_problem``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "WRAPPER_PATH", "HELPER_PATH", "DROPIN_PATH", "REQUEST_DIR", "MEMORY_MODES", "LAZY_MODES", "MEMORY_DEFAULT",
    "AUTO_LAZY_BYTES", "wrapper_text", "helper_text", "dropin_text", "real_runc", "read_text", "install_plan",
    "apply_plan", "is_container_id", "request_lazy", "request_split", "request_parent", "split_outcome", "fill_state",
    "release_request", "stop_fill", "lazy_problem", "hold_problem", "TREE_PATH", "request_files", "release_files",
    "files_problem",
]

import json
import os
import pkgutil
import re
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import fsync_dir, write_atomic
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages

WRAPPER_PATH = "/usr/local/libexec/stacklift/runc"
HELPER_PATH = "/usr/local/libexec/stacklift/pages.py"
TREE_PATH = "/usr/local/libexec/stacklift/tree.py"  # the staged files' receiver, and their applier (_archive/tree.py)
DROPIN_PATH = "/etc/containers/containers.conf.d/50-stacklift-lazy.conf"
REQUEST_DIR = "/run/stacklift/lazy"
# How a service's memory crosses: all of it before the restore returns, or filled in after it; auto: lazy from
# AUTO_LAZY_BYTES of resident memory on (below, the wrapper's and the daemon's start cost more than the pages:
# the demo's 40 MB paused 4.3 s eager and 4.9 s lazy, a Redis of 512 MiB 12 s eager and 2.3-2.6 s lazy).
# precopy+lazy: lazy, its checkpoint on pre-dumps made while the service ran (precopy.py), where the kernel
# tracks written pages; auto takes it there.
MEMORY_MODES = ("eager", "lazy", "precopy+lazy", "auto")
LAZY_MODES = ("lazy", "precopy+lazy")
MEMORY_DEFAULT = "auto"
AUTO_LAZY_BYTES = 256 << 20
POLL = 0.02

_WRAPPER = r"""#!/bin/sh
# stacklift's OCI runtime wrapper (stacklift.migrate.lazy_runtime wrote it; it rewrites it).
# Every call goes to the host's runc unchanged, except for containers stacklift named in {requests}:
# - ID.pages: its checkpoint is split after runc wrote it ({helper} split): its lazy pages stay on this
#   host, aside, for the target's daemon; ID.split gets the outcome. When ID.pages names a directory (on a
#   tmpfs), runc writes the checkpoint there and the split moves the rest to the engine's directory.
#   ID.parent names the pre-dump the checkpoint continues (pre-copy);
# - ID.request: its restore is lazy: CRIU's lazy-pages daemon fills its memory after it runs, from the
#   images, or from the page server the request names ("remote ADDRESS PORT TOKEN"); once it runs, a keeper
#   ({helper} keep) holds the daemon's userfaultfds too (ID.kept), and finishes the fill if the daemon dies
#   (ID.finish);
# - a restore of a split checkpoint that is not lazy (a restore in place) gets its pages back first;
# - ID.files: its restore first puts the files staged before the fence into its root and volumes ({tree} apply).
REAL={real}
REQ={requests}
PY={python}
HELPER={helper}
TREE={tree}
case " $* " in *" restore "*|*" checkpoint "*) ;; *) exec "$REAL" "$@" ;; esac
id= img= work= prev= cmd= pidfile= bundle=
for a in "$@"; do
  case "$prev" in --image-path) img=$a ;; --work-path) work=$a ;; --pid-file) pidfile=$a ;; --bundle|-b) bundle=$a ;; esac
  case "$a" in restore|checkpoint) [ -z "$cmd" ] && cmd=$a ;; esac
  prev=$a; id=$a
done
if [ -z "$id" ] || [ -z "$img" ]; then exec "$REAL" "$@"; fi
if [ "$cmd" = checkpoint ]; then
  [ -f "$REQ/$id.pages" ] || exec "$REAL" "$@"
  scratch=$(cat "$REQ/$id.pages") parent= dir=$img
  # pre-copied (ID.parent): the checkpoint continues stacklift's last pre-dump, and writes only what changed since
  [ -f "$REQ/$id.parent" ] && parent=$(cat "$REQ/$id.parent")
  if [ -n "$scratch" ]; then
    # the images written into SCRATCH (a tmpfs): no page cache written back while the container is frozen;
    # the split then moves the small rest to the engine's directory and leaves the pages there
    rm -rf "$scratch/$id" && mkdir -p -m 700 "$scratch/$id" || exit 1
    dir=$scratch/$id/img
  fi
  first=1 prev=
  for a in "$@"; do
    if [ $first = 1 ]; then set --; first=0; fi
    if [ "$prev" = --image-path ]; then a=$dir; fi
    set -- "$@" "$a"
    if [ "$a" = checkpoint ] && [ -n "$parent" ]; then set -- "$@" --parent-path "$parent"; fi
    prev=$a
  done
  if [ -z "$scratch" ]; then
    "$REAL" "$@" || exit $?
    "$PY" "$HELPER" split "$img" > "$REQ/$id.split.tmp" 2>&1
  else
    "$REAL" "$@" || { rc=$?; rm -rf "$scratch/$id"; exit $rc; }
    "$PY" "$HELPER" split "$scratch/$id/img" "$img" > "$REQ/$id.split.tmp" 2>&1
  fi
  mv "$REQ/$id.split.tmp" "$REQ/$id.split"
  exit 0
fi
if [ -f "$REQ/$id.files" ]; then
  "$PY" "$TREE" apply "$REQ/$id.files" "${bundle:-.}" > "$REQ/$id.files.log" 2>&1 ||
    { cat "$REQ/$id.files.log" >&2; exit 1; }
fi
if [ ! -f "$REQ/$id.request" ] || [ -z "$work" ]; then
  if [ -d "$img.stacklift-pages" ]; then "$PY" "$HELPER" unsplit "$img" >/dev/null || exit 1; fi
  exec "$REAL" "$@"
fi
remote=$(cat "$REQ/$id.request")
rm -f "$work/lazy-pages.socket" "$REQ/$id.rc" "$REQ/$id.pid"
setsid sh -c 'criu lazy-pages --images-dir "$1" --work-dir "$2" -v4 --log-file "$3.log" $4 </dev/null >/dev/null 2>&1 &
  echo $! > "$3.pid"; wait $!; echo $? > "$3.rc.tmp"; mv "$3.rc.tmp" "$3.rc"' sh "$img" "$work" "$REQ/$id" \
  "$(echo "$remote" | sed -n 's/^remote \([0-9.]*\) \([0-9]*\) [0-9a-f]*$/--page-server --address \1 --port \2/p')" &
i=0
while [ ! -S "$work/lazy-pages.socket" ]; do
  i=$((i+1))
  if [ $i -gt 1000 ] || [ -f "$REQ/$id.rc" ]; then echo "stacklift: criu lazy-pages did not start" >&2; exit 1; fi
  sleep 0.01
done
first=1
for a in "$@"; do
  if [ $first = 1 ]; then set --; first=0; fi
  set -- "$@" "$a"
  if [ "$a" = restore ]; then set -- "$@" --lazy-pages; fi
done
if [ -n "$pidfile" ]; then
  # a second holder of the daemon's userfaultfds: if it dies mid-fill, the process stalls instead of reading zeros
  setsid "$PY" "$HELPER" keep "$REQ/$id" "$img" "$pidfile" </dev/null >"$REQ/$id.keep.log" 2>&1 &
fi
exec "$REAL" "$@"
"""


def _check_path(path, what):
    """PATH, written into the wrapper's sh: absolute, and of letters, digits and ._-/ only (else ValueError)."""
    if not path.startswith("/") or re.search(r"[^A-Za-z0-9_./-]", path):
        raise ValueError("%s must be absolute, of letters, digits and ._-/: %r" % (what, path))


def wrapper_text(real, python, requests=REQUEST_DIR, helper=HELPER_PATH, tree_helper=TREE_PATH):
    """The wrapper's text, calling the runc at REAL, and its helpers with the Python at PYTHON."""
    for path in (real, python, requests, helper, tree_helper):
        _check_path(path, "the runtime's and Python's paths")
    return _WRAPPER.replace("{real}", real).replace("{requests}", requests).replace(
        "{python}", python).replace("{helper}", helper).replace("{tree}", tree_helper)


def helper_text(module=pages):
    """A helper's text: the module itself (pages or tree, leaves of the standard library)."""
    package, name = module.__name__.rsplit(".", 1)
    return pkgutil.get_data(package, name + ".py").decode("utf-8")


def dropin_text(wrapper=WRAPPER_PATH):
    """The containers.conf drop-in that has Podman run the wrapper as its runc."""
    return ("# stacklift.migrate.lazy_runtime: Podman's runc is stacklift's wrapper, which runs the host's runc\n"
            "[engine.runtimes]\nrunc = [\"%s\"]\n" % wrapper)


def real_runc(candidates=("/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc", "/usr/local/sbin/runc"),
              wrapper=WRAPPER_PATH):
    """The host's runc binary: the first of CANDIDATES that exists and is not the wrapper."""
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK) and os.path.realpath(path) != os.path.realpath(wrapper):
            return path
    return None


def read_text(path):
    """The text of the file at PATH, or None when there is none."""
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def install_plan(real, python, present=True, wrapper=WRAPPER_PATH, dropin=DROPIN_PATH, helper=HELPER_PATH,
                 tree_helper=TREE_PATH):
    """{path: wanted text, or None for absent} for the files that differ from what is there."""
    wanted = {wrapper: wrapper_text(real, python, helper=helper, tree_helper=tree_helper) if present else None,
              dropin: dropin_text(wrapper) if present else None, helper: helper_text() if present else None,
              tree_helper: helper_text(tree) if present else None}
    return {path: text for path, text in wanted.items() if read_text(path) != text}


def apply_plan(plan, wrapper=WRAPPER_PATH):
    """Write (or remove) the files of an install_plan: the wrapper executable, the drop-in readable by all."""
    for path, text in sorted(plan.items()):
        if text is None:
            if os.path.lexists(path):
                os.unlink(path)
            continue
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        write_atomic(path, text, 0o755 if path == wrapper else 0o644)


def is_container_id(value):
    """Whether VALUE is a container's ID as the engines print it (the wrapper's request files are named by it)."""
    return bool(re.match(r"^[0-9a-f]{12,64}$", value or ""))


def _request(requests, container_id, suffix, text=""):
    """The request file REQUESTS/CONTAINER_ID+SUFFIX holding TEXT, durable (the wrapper reads it by that name)."""
    if not is_container_id(container_id):
        raise ValueError("not a container ID: %r" % (container_id,))
    os.makedirs(requests, mode=0o700, exist_ok=True)
    write_atomic(os.path.join(requests, container_id + suffix), text)
    fsync_dir(requests)


def _remove(requests, container_id, suffixes):
    for suffix in suffixes:
        if os.path.lexists(os.path.join(requests, container_id + suffix)):
            os.unlink(os.path.join(requests, container_id + suffix))


def request_lazy(container_id, requests=REQUEST_DIR, page_server=None):
    """Ask the wrapper to restore CONTAINER_ID lazily (the next restore of that ID): its pages from the
    checkpoint's images, or, PAGE_SERVER ({port, token}), from the page server at that port of this host's
    loopback (the source's, forwarded over SSH; the token opens a connection after the daemon's)."""
    text = ""
    if page_server:
        if not re.match(r"^[0-9a-f]{32}$", str(page_server.get("token"))):
            raise ValueError("the page server's token is not 32 hex digits")
        text = "remote 127.0.0.1 %d %s\n" % (int(page_server["port"]), page_server["token"])
    _request(requests, container_id, ".request", text)
    _remove(requests, container_id, (".rc", ".pid", ".log", ".kept", ".keep.log", ".finish"))


def request_split(container_id, requests=REQUEST_DIR, scratch=""):
    """Ask the wrapper to split CONTAINER_ID's next checkpoint (pages.split): its lazy pages stay here, in
    SCRATCH (a directory on a tmpfs, where runc then writes the checkpoint) when given."""
    if scratch:
        _check_path(scratch, "a scratch directory")
    _request(requests, container_id, ".pages", scratch)
    _remove(requests, container_id, (".split",))


def request_parent(container_id, parent, requests=REQUEST_DIR):
    """Ask the wrapper to have CONTAINER_ID's next split checkpoint continue the pre-dump at PARENT."""
    _check_path(parent, "a pre-dump's directory")
    _request(requests, container_id, ".parent", parent)


def request_files(container_id, trees, requests=REQUEST_DIR):
    """Ask the wrapper to put the files staged before the fence into CONTAINER_ID's root and volumes before its next
    restore (tree.apply_request). TREES: [{stage, digest, into, exact}], each checked against its manifest's DIGEST."""
    for t in trees:
        _check_path(t["stage"], "a staging directory")
        if not re.match(r"^[0-9a-f]{64}$", t.get("digest") or "") or not (t.get("into") or "").startswith("/"):
            raise ValueError("not a staged tree: %r" % (t,))
    _request(requests, container_id, ".files", json.dumps([{k: t.get(k) for k in ("stage", "digest", "into", "exact")}
                                                           for t in trees]))


def release_files(container_id, requests=REQUEST_DIR):
    """The files request gone; what the apply said stays in ID.files.log until the next."""
    _remove(requests, container_id, (".files",))


def files_problem(wrapper=WRAPPER_PATH, tree_helper=TREE_PATH):
    """Why this host's wrapper cannot put staged files into a restored container's root, or None."""
    if not os.access(tree_helper, os.R_OK) or "$id.files" not in (read_text(wrapper) or ""):
        return "stacklift's runtime wrapper here cannot apply staged files (rerun stacklift.migrate.lazy_runtime)"
    return None


def split_outcome(container_id, requests=REQUEST_DIR):
    """The request gone, and what became of it: pages.split's summary ({pids, lazy_bytes, image_dir}), or
    None when the checkpoint is whole ({"error": why} when the split was tried and failed)."""
    _remove(requests, container_id, (".pages", ".parent"))
    text = read_text(os.path.join(requests, container_id + ".split"))
    _remove(requests, container_id, (".split",))
    if text is None:
        return None
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "the split helper said: %s" % text.strip()[-300:]}


def release_request(container_id, requests=REQUEST_DIR):
    """The request gone (a later restore of that ID is eager again); the fill's record stays until the next."""
    path = os.path.join(requests, container_id + ".request")
    if os.path.lexists(path):
        os.unlink(path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def fill_state(container_id, requests=REQUEST_DIR):
    """What the fill of CONTAINER_ID's memory is: {"state": "none" (no lazy restore), "filling", "resident" or
    "failed", "detail": why it failed, "finish": when the daemon failed, how its keeper's finishing of the fill
    goes (pages.keep): None (not tried), {"state": "finishing"}, {"state": "done", "pages", "seconds"} or
    {"state": "failed", "detail"}}."""
    base = os.path.join(requests, container_id)
    rc, pid = read_text(base + ".rc"), read_text(base + ".pid")
    if rc is not None:
        if rc.strip() == "0":
            return {"state": "resident", "detail": None, "finish": None}
        tail = _tail(base + ".log", 3)
        try:
            finish = json.loads(read_text(base + ".finish") or "null")
        except ValueError:
            finish = None
        return {"state": "failed", "detail": "criu lazy-pages exited %s: %s" % (rc.strip(), " / ".join(tail)),
                "finish": finish}
    if pid is None:
        return {"state": "none", "detail": None, "finish": None}
    if pid.strip().isdigit() and _alive(int(pid)):
        return {"state": "filling", "detail": None, "finish": None}
    time.sleep(0.2)  # its status may be on its way
    if os.path.exists(base + ".rc"):
        return fill_state(container_id, requests)
    return {"state": "failed", "detail": "criu lazy-pages (pid %s) is gone without a status" % pid.strip(),
            "finish": None}


def _tail(path, lines):
    """The last LINES lines of the file at PATH (read from its last 64 KiB: CRIU's log is at -v4), or []."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
            return f.read().decode("utf-8", "replace").strip().splitlines()[-lines:]
    except (IOError, OSError):
        return []


def hold_problem(container_id, requests=REQUEST_DIR, wait=2.0):
    """Why the keeper of CONTAINER_ID's fill does not hold every userfaultfd of its daemon (pages.keep), or None
    (it does, or the fill is over). Waits up to WAIT for a keeper that is starting."""
    base = os.path.join(requests, container_id)
    deadline = time.time() + wait
    while True:
        if fill_state(container_id, requests)["state"] != "filling":
            return None  # the fill is over: the daemon may have ended before the keeper took its userfaultfds
        kept = read_text(base + ".kept")
        if kept is not None:
            break
        if time.time() >= deadline:
            said = " / ".join((read_text(base + ".keep.log") or "").strip().splitlines()[-2:])
            return "no keeper holds its fill's userfaultfds%s" % (": " + said if said else "")
        time.sleep(POLL)
    try:
        kept = json.loads(kept)
    except ValueError:
        return "its keeper's record is not JSON: %r" % kept[:100]
    if kept.get("held", 0) < kept.get("expected", 0):
        return "its keeper holds %s of the %s userfaultfds of its fill" % (kept.get("held"), kept.get("expected"))
    return None


def stop_fill(container_id, requests=REQUEST_DIR):
    """End the fill of CONTAINER_ID if one runs (its restore failed, or the copy is being removed): a daemon whose
    restore never connected would wait for it forever."""
    pid = read_text(os.path.join(requests, container_id + ".pid"))
    if pid and pid.strip().isdigit() and _alive(int(pid)):
        try:
            os.kill(int(pid), 9)
        except OSError:
            pass


def lazy_problem(engine_name, runtime, wrapper=WRAPPER_PATH, dropin=DROPIN_PATH):
    """Why this host cannot restore lazily, or None."""
    if engine_name != "podman":
        return "lazy restore needs Podman (Docker's restore repacks the images through containerd)"
    if runtime and runtime != "runc":
        return "lazy restore needs Podman's runtime runc, not %s" % runtime
    if not os.access(wrapper, os.X_OK) or not os.path.exists(dropin):
        return "stacklift's runtime wrapper is not installed (stacklift.migrate.lazy_runtime)"
    return None
