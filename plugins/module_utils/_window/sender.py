# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The source's sender: the window's archives pushed to their targets over one SSH connection per
target, opened before the fence and kept open, and the notes the source leaves on its targets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["Sender", "VOLUME_SCRIPT", "DROP_SCRIPT"]

import binascii
import hmac
import os
import posixpath
import threading
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    read_manifest, sha256_file, write_manifest)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import TREE_PATH
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.pages import PageIndex, serve
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import (
    STALL_TIMEOUT, clock_offset, connect, push_file, quote, remote_run, send_stream)
from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import (
    committed_command, note_body, note_command, note_path)


# Make the volume (unless this run made it already), then print its directory.
VOLUME_SCRIPT = (
    "if podman volume exists {v}; then [ -f {made} ] || {{ echo 'a volume of that name is there already, not made by "
    "this run' >&2; exit 3; }}; else mkdir -p -m 700 {s} && podman volume create {v} >/dev/null && echo {v} > {made}; "
    "fi && podman volume inspect -f '{{{{.Mountpoint}}}}' {v}")

# Remove the volumes a staging made (their ``made`` marks), then its directory.
DROP_SCRIPT = ("for m in {s}/*/made; do [ -f \"$m\" ] || continue; podman volume rm -f \"$(cat \"$m\")\" >/dev/null || "
               "exit 1; done; rm -rf {s}")


def _token_given(chan, token, wait=2.0):
    """Whether CHAN opens with TOKEN and a newline (answered "ok")."""
    chan.settimeout(wait)
    got = b""
    while not got.endswith(b"\n") and len(got) <= len(token):
        block = chan.recv(len(token) + 1 - len(got))
        if not block:
            return False
        got += block
    if not hmac.compare_digest(got, token.encode("ascii") + b"\n"):
        return False
    chan.settimeout(None)
    chan.sendall(b"ok\n")
    return True


class Sender:
    """Sends a source window's archives to their targets: one SSH connection per target, kept open.

    ``Sender(params, targets)`` with the module's SSH params and {service: target address}.
    """

    def __init__(self, params, targets, run_id, stack, archive_dir):
        self.params = params
        self.targets = targets
        self.run_id = run_id
        self.stack = stack
        self.archive_dir = archive_dir  # the same path on the targets
        self.clients = {}
        self.offsets = {}
        self.lock = threading.Lock()
        self.page_servers = {}  # {(id of a target's transport, forwarded port): {service, index, served}}

    def client(self, address):
        with self.lock:
            if address not in self.clients:
                self.clients[address] = connect(dict(self.params, target_host=address))
                # The report puts the target's times on this host's clock (downtime on one clock).
                self.offsets[address] = clock_offset(self.clients[address])
            return self.clients[address]

    def connect_all(self):
        """Connect to every target now, before the fence: no transfer then waits for a handshake."""
        for address in sorted(set(self.targets.values())):
            self.client(address)

    def committed(self, wait=1.0):
        """Whether every target lifted its fence for the run (the stack serves there), looked up on
        the targets over the connections that carried the archives, within WAIT seconds each."""
        cmd = committed_command(self.archive_dir, self.stack, self.run_id, wait)
        for address in sorted(set(self.targets.values())):
            rc, _out, _err = remote_run(self.client(address), cmd, timeout=wait + STALL_TIMEOUT)
            if rc != 0:
                return False
        return True

    def stage_files(self, service, root, stage, previous, mapped=(), tree_dir=None):
        """Bring the copy on SERVICE's target of the files under ROOT (a container's upper directory, a volume's)
        up to date: all of them against PREVIOUS {} (while the service serves), else what changed since PREVIOUS
        (tree.changes). The copy is at STAGE, or TREE_DIR (its manifest at STAGE). Returns the new manifest's
        entries, with the stream's bytes and seconds."""
        entries = {}

        def records():
            for record, data in tree.changes(root, previous, mapped=mapped, out=entries):
                yield tree.encode(record, data)
            yield tree.encode({"op": "end", "entries": entries})
        cmd = "python3 %s receive %s%s" % (quote(TREE_PATH), quote(stage), " " + quote(tree_dir) if tree_dir else "")
        stats = send_stream(self.client(self.targets[service]), cmd, records(), "%s's files" % service)
        return entries, {"bytes": stats["bytes"], "seconds": stats["seconds"]}

    def volume_dir(self, service, volume, stage):
        """The directory of VOLUME on SERVICE's target, made there now for this run's staging (a file STAGE/made
        says so, for a rollback there to remove it). A volume of that name already there, not made so, is refused:
        its files are not this service's."""
        cmd = VOLUME_SCRIPT.format(v=quote(volume), s=quote(stage), made=quote(posixpath.join(stage, tree.MADE)))
        rc, out, err = remote_run(self.client(self.targets[service]), cmd, timeout=STALL_TIMEOUT)
        if rc != 0 or not out.strip().startswith("/"):
            raise RuntimeError("volume %s on the target: %s" % (volume, (err or out).strip() or "exit %d" % rc))
        return out.strip()

    def drop_staged(self, service, stage):
        """What a staging left on SERVICE's target removed: the volumes it made there, and STAGE. None once done, else
        why not."""
        try:
            rc, out, err = remote_run(self.client(self.targets[service]), DROP_SCRIPT.format(s=quote(stage)),
                                      timeout=STALL_TIMEOUT)
        except Exception as e:  # pylint: disable=broad-except
            return str(e) or type(e).__name__
        return None if rc == 0 else (err or out).strip() or "exit %d" % rc

    def __call__(self, service, archive, manifest, sha256, pages=None, files=None):
        """Push ARCHIVE and then its manifest to SERVICE's target. PAGES: what the checkpoint's split left
        here (pages.split), served to the target's lazy-pages daemon through a port forwarded on its loopback.
        FILES: where its files were staged on the target, and their manifests' digests (stage_files)."""
        address = self.targets[service]
        client = self.client(address)
        stats = push_file(client, archive, archive, sha256)
        # The manifest goes last: its arrival tells the target the archive is whole, and that the push checked
        # its sha256 there as it arrived (arrived_checked: the target need not read it again).
        data = dict(read_manifest(archive), arrived_checked={"sha256": sha256, "size": os.path.getsize(archive)})
        if pages:
            port, token = self.serve_pages(service, pages["image_dir"])
            data["pages"] = {"port": port, "token": token}
        if files:  # its staged volumes are made on the target too: a rollback there removes them
            data["files"] = files
            data["volumes"] = sorted(set(data.get("volumes") or []) | set(files.get("volumes") or []))
        sent = write_manifest("%s.sent-%d" % (archive, os.getpid()), data)
        try:
            push_file(client, sent, manifest, sha256_file(sent))
        finally:
            os.unlink(sent)
        offset, error = self.offsets.get(address, (None, None))
        return dict(stats, clock_offset=offset, clock_error=error)

    def serve_pages(self, service, image_dir):
        """(a port on SERVICE's target's loopback, forwarded over the connection held to it, where this host serves
        the lazy pages of the split checkpoint at IMAGE_DIR (CRIU's page-server protocol); the token a connection
        after the first must open with)."""
        address = self.targets[service]
        index = PageIndex(image_dir)  # read now: a split that cannot be served fails the send, before the restore
        transport = self.client(address).get_transport()
        port = transport.request_port_forward("127.0.0.1", 0, handler=self._page_channel)
        token = binascii.hexlify(os.urandom(16)).decode("ascii")
        with self.lock:
            self.page_servers[(id(transport), port)] = {"service": service, "index": index, "token": token,
                                                        "served": {}}
        return port, token

    def _page_channel(self, chan, _origin, server):
        """A connection to a target's page port (paramiko's transport thread calls this): served in a thread of its
        own, one at a time, until one says every page is in. The first is the lazy-pages daemon's, as its restore
        starts; a later one (the keeper finishing the fill of a daemon that died) must open with the token, which
        only the target's root can read: no other local user of the target's is answered."""
        with self.lock:
            entry = self.page_servers.get((id(chan.get_transport()), server[1]))
            take = entry is not None and not entry.get("serving") and not entry["served"].get("done")
            if take:
                entry["serving"] = True
        if not take:
            chan.close()
            return
        threading.Thread(target=self._serve_channel, args=(chan, entry), daemon=True).start()

    @staticmethod
    def _serve_channel(chan, entry):
        counts, start, done = {}, time.time(), False
        # (The forward stays until the connection closes: paramiko's cancel_port_forward drops the handler of
        # every forward of the transport, the other services' too.)
        try:
            if entry["served"].get("connections") and not _token_given(chan, entry["token"]):
                return
            done = serve(chan, entry["index"], counts)
        except Exception:  # pylint: disable=broad-except
            done = False
        finally:
            chan.close()
            before = entry["served"]
            entry["served"] = dict((k, before.get(k, 0) + counts.get(k, 0)) for k in ("pages", "requests"))
            entry["served"].update(done=done, seconds=round(time.time() - start + before.get("seconds", 0), 3),
                                   connections=before.get("connections", 0) + 1)
            entry["serving"] = False

    def pages_served(self):
        """{service: {pages, requests, seconds, connections}} of the services whose target took every page."""
        with self.lock:
            return {e["service"]: {k: v for k, v in e["served"].items() if k != "done"}
                    for e in self.page_servers.values() if e["served"].get("done")}

    def tell(self, kind, msg=None, fresh=False):
        """Leave a KIND note of the run on every target (protocol.NOTES), over the connections held,
        or, FRESH, over connections of their own. A target that cannot be told goes by its timeouts."""
        cmd = note_command(note_path(self.archive_dir, self.stack, kind), note_body(self.run_id, msg))
        for address in sorted(set(self.targets.values())):
            try:
                if not fresh:
                    remote_run(self.client(address), cmd, timeout=STALL_TIMEOUT)
                    continue
                client = connect(dict(self.params, target_host=address, connect_timeout=5))
                remote_run(client, cmd, timeout=STALL_TIMEOUT)
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass

    def abort(self, msg):
        """Tell every target this run is given up, so none waits for archives that will not come; over
        connections of their own: the ones that carried the archives may be the ones that stalled."""
        self.tell("abort", msg, fresh=True)

    def close(self):
        for c in self.clients.values():
            c.close()
