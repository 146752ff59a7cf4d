# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host-to-host streams over SSH (paramiko), so data never passes through the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import posixpath
import socket
import subprocess
import threading
import time
import traceback
import uuid

from ansible_collections.stacklift.migrate.plugins.module_utils.archive import sha256_file

try:
    import paramiko
    HAS_PARAMIKO = True
    PARAMIKO_IMPORT_ERROR = None
except ImportError:
    HAS_PARAMIKO = False
    PARAMIKO_IMPORT_ERROR = traceback.format_exc()

try:
    from shlex import quote
except ImportError:  # pragma: no cover
    from pipes import quote

HOST_KEY_POLICIES = ["strict", "accept_new", "ignore"]
# stacklift's own known hosts: the preflight puts each target's key there, read over the connection
# the controller already trusts, so the first connection from a source to a target is checked too.
KNOWN_HOSTS = "/var/lib/stacklift/known_hosts"
CHUNK = 1 << 20
# A target that stops answering must not hang a migration while its stack is frozen: SSH keepalives,
# and no read or write may wait longer than this for progress.
KEEPALIVE = 5
STALL_TIMEOUT = 15

SSH_ARGUMENT_SPEC = dict(
    target_host=dict(type="str", required=True),
    target_port=dict(type="int", default=22),
    target_user=dict(type="str", default="root"),
    key_file=dict(type="path"),
    host_key_checking=dict(type="str", default="strict", choices=HOST_KEY_POLICIES),
    known_hosts_file=dict(type="path", default=KNOWN_HOSTS),
    connect_timeout=dict(type="int", default=10),
)


class TransferError(Exception):
    def __init__(self, msg, **details):
        super(TransferError, self).__init__(msg)
        self.msg = msg
        self.details = details


def parse_endpoint(address, user="root", port=22):
    """(user, host, port) of an SSH endpoint ``[user@]host[:port]`` (an IPv6 host with a port in
    brackets, ``[fd00::2]:2222``); USER and PORT where it gives none."""
    if "@" in address:
        user, address = address.rsplit("@", 1)
    if address.startswith("["):
        host, _sep, rest = address[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return user, host, port
    if address.count(":") == 1:
        host, rest = address.split(":")
        if rest.isdigit():
            return user, host, int(rest)
    return user, address, port


def known_hosts_name(host, port):
    """How OpenSSH's known_hosts (and paramiko) name HOST reached on PORT."""
    return host if int(port) == 22 else "[%s]:%d" % (host, int(port))


def connect(params):
    """An SSH client to the target host named in a module's SSH_ARGUMENT_SPEC params; its target_host
    may give the user and port too (``root@192.0.2.12:2222``)."""
    user, host, port = parse_endpoint(params["target_host"], params["target_user"], params["target_port"])
    params = dict(params, target_host=host, target_user=user, target_port=port)
    client = paramiko.SSHClient()
    known = os.path.expanduser(params["known_hosts_file"])
    policy = params["host_key_checking"]
    if policy != "ignore" and os.path.exists(known):
        client.load_host_keys(known)
    if policy == "strict":
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    elif policy == "accept_new":
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.WarningPolicy())
    where = "%s@%s:%s" % (params["target_user"], params["target_host"], params["target_port"])
    try:
        client.connect(params["target_host"], port=params["target_port"], username=params["target_user"],
                       key_filename=params.get("key_file"), timeout=params["connect_timeout"],
                       banner_timeout=params["connect_timeout"], allow_agent=False,
                       look_for_keys=params.get("key_file") is None)
    except paramiko.BadHostKeyException as e:
        raise TransferError("%s's host key is not the one %s holds for it (%s): refusing to send the stack there"
                            % (where, known, e))
    except paramiko.SSHException as e:
        if policy == "strict" and "not found in known_hosts" in str(e):
            raise TransferError("%s's host key is not in %s (host_key_checking=strict); stacklift's preflight "
                                "puts it there, read over the controller's own connection to the target"
                                % (where, known))
        raise TransferError("cannot reach %s over SSH: %s" % (where, e))
    except (OSError, EOFError) as e:
        raise TransferError("cannot reach %s over SSH: %s" % (where, e))
    if policy == "accept_new":
        try:
            d = os.path.dirname(known)
            if not os.path.isdir(d):
                os.makedirs(d, 0o700)
            client.save_host_keys(known)
        except (IOError, OSError):
            pass
    client.get_transport().set_keepalive(KEEPALIVE)
    return client


def remote_run(client, cmd, timeout=600):
    """Run a shell command on the target; returns (rc, stdout, stderr)."""
    stdin, stdout, stderr = client.exec_command(cmd, timeout=timeout)
    stdin.close()
    out = stdout.read().decode("utf-8", "replace")
    err = stderr.read().decode("utf-8", "replace")
    return stdout.channel.recv_exit_status(), out, err


def remote_sha256(client, path):
    rc, out, err = remote_run(client, "sha256sum %s 2>/dev/null" % quote(path), timeout=STALL_TIMEOUT * 4)
    return out.split()[0] if rc == 0 and out.strip() else None


class Watchdog(object):
    """Closes CLIENT's connection when a step makes no progress in time.

    Some of paramiko's waits have no timeout of their own (opening a channel or the SFTP
    subsystem waits as long as the transport lives, and a target whose packets are dropped keeps
    it alive for many minutes); closing the transport ends every one of them with an error.
    """

    def __init__(self, client, seconds=None):
        self.client = client
        self.seconds = seconds or STALL_TIMEOUT
        self.deadline = time.time() + self.seconds
        self.fired = False
        self.done = threading.Event()
        thread = threading.Thread(target=self._watch)
        thread.daemon = True
        thread.start()

    def touch(self, seconds=None):
        """Progress: the next step has SECONDS (default the stall limit) to make some."""
        self.deadline = time.time() + (seconds or self.seconds)

    def _watch(self):
        while not self.done.wait(0.2):
            if time.time() > self.deadline:
                self.fired = True
                self.client.close()
                return

    def stop(self):
        self.done.set()


def push_file(client, local_path, remote_path, expected_sha256, mode=0o600, dir_mode=0o700):
    """Copy a file to the target under a temporary name, check it, then rename it into place.

    An interrupted copy leaves at most the temporary file, never one under the final name. A
    target that stops answering ends it within STALL_TIMEOUT (the Watchdog), with a clean error.
    """
    remote_dir = posixpath.dirname(remote_path)
    tmp = posixpath.join(remote_dir, ".%s.part-%s" % (posixpath.basename(remote_path), uuid.uuid4().hex[:8]))
    watchdog = Watchdog(client)
    sent = 0
    start = time.time()
    sftp = None
    try:
        # Only a directory made here gets DIR_MODE: an existing one (say /tmp) keeps its own.
        rc, out, err = remote_run(client, "test -d %s || mkdir -p -m %o %s"
                                  % (quote(remote_dir), dir_mode, quote(remote_dir)), timeout=STALL_TIMEOUT)
        if rc != 0:
            raise TransferError("cannot create %s on the target: %s" % (remote_dir, err.strip()), stderr=err)
        watchdog.touch()
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(STALL_TIMEOUT)
        with open(local_path, "rb") as src:
            with sftp.open(tmp, "wb") as dst:
                sftp.chmod(tmp, mode)
                dst.set_pipelined(True)
                for block in iter(lambda: src.read(CHUNK), b""):
                    dst.write(block)
                    sent += len(block)
                    watchdog.touch()
        watchdog.touch(STALL_TIMEOUT * 4)  # the target reads the whole file back
        got = remote_sha256(client, tmp)
        if got != expected_sha256:
            raise TransferError("%s arrived with sha256 %s, expected %s; the final name was not touched"
                                % (remote_path, got, expected_sha256))
        watchdog.touch()
        sftp.posix_rename(tmp, remote_path)
    except BaseException as e:
        stalled = watchdog.fired or isinstance(e, socket.timeout)
        if sftp is not None and not stalled:
            try:
                sftp.remove(tmp)
            except (IOError, OSError, socket.timeout, paramiko.SSHException):
                pass
        if stalled:
            raise TransferError("the transfer of %s to the target stalled for %g s after %d bytes; the final "
                                "name was not touched" % (remote_path, STALL_TIMEOUT, sent))
        if isinstance(e, (IOError, OSError, EOFError, paramiko.SSHException)):
            # a full disk, a dropped connection: a clean error, not a traceback
            raise TransferError("sending %s to the target failed after %d bytes: %s; the final name was not "
                                "touched" % (remote_path, sent, e or type(e).__name__))
        raise
    finally:
        watchdog.stop()
        if sftp is not None:
            try:
                sftp.close()
            except (IOError, OSError, paramiko.SSHException):
                pass
    return {"bytes": sent, "seconds": round(time.time() - start, 3)}


def stream_to_remote(local_argv, client, remote_cmd, timeout=1800):
    """Pipe a local command's stdout into a remote command's stdin; returns bytes and timings."""
    start = time.time()
    proc = subprocess.Popen(local_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chan = client.get_transport().open_session(timeout=timeout)
    chan.exec_command(remote_cmd)
    sent = 0
    try:
        for block in iter(lambda: proc.stdout.read(CHUNK), b""):
            chan.sendall(block)
            sent += len(block)
        chan.shutdown_write()
        local_err = proc.stderr.read().decode("utf-8", "replace")
        local_rc = proc.wait()
        out = b""
        while True:
            data = chan.recv(65536)
            if not data:
                break
            out += data
        err = b""
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        remote_rc = chan.recv_exit_status()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        chan.close()
    if local_rc != 0:
        raise TransferError("%s failed (%d): %s" % (" ".join(local_argv), local_rc, local_err.strip()),
                            rc=local_rc, stderr=local_err)
    if remote_rc != 0:
        remote_err = err.decode("utf-8", "replace")
        raise TransferError("%s failed on the target (%d): %s" % (remote_cmd, remote_rc, remote_err.strip()),
                            rc=remote_rc, stdout=out.decode("utf-8", "replace"),
                            stderr=remote_err)
    return {"bytes": sent, "seconds": round(time.time() - start, 3), "stdout": out.decode("utf-8", "replace")}


def clock_offset(client, tries=3):
    """(the target's clock minus this host's, the most it can be off): the read with the shortest
    round trip, its error half that round trip."""
    best = None
    for _try in range(tries):
        t0 = time.time()
        rc, out, _err = remote_run(client, "date +%s.%N", timeout=STALL_TIMEOUT)
        t1 = time.time()
        if rc != 0:
            continue
        try:
            remote = float(out.strip())
        except ValueError:
            continue
        if best is None or t1 - t0 < 2 * best[1]:
            best = (remote - (t0 + t1) / 2, (t1 - t0) / 2)
    return (round(best[0], 4), round(best[1], 4)) if best else (None, None)


class Sender(object):
    """Sends a source agent's archives to their targets: one SSH connection per target, kept open.

    ``Sender(params, targets)`` with the module's SSH params and {service: target address}.
    """

    def __init__(self, params, targets, run_id, stack, abort_dir):
        self.params = params
        self.targets = targets
        self.run_id = run_id
        self.stack = stack
        self.abort_dir = abort_dir
        self.clients = {}
        self.offsets = {}
        self.lock = threading.Lock()

    def client(self, address):
        with self.lock:
            if address not in self.clients:
                self.clients[address] = connect(dict(self.params, target_host=address))
                # The report puts the target's times on this host's clock (downtime on one clock).
                self.offsets[address] = clock_offset(self.clients[address])
            return self.clients[address]

    def __call__(self, service, archive, manifest, sha256):
        address = self.targets[service]
        client = self.client(address)
        stats = push_file(client, archive, archive, sha256)
        # The manifest goes last: its arrival tells the target the archive is whole.
        push_file(client, manifest, manifest, sha256_file(manifest))
        offset, error = self.offsets.get(address, (None, None))
        return dict(stats, clock_offset=offset, clock_error=error)

    def abort(self, msg):
        """Tell every target this run is given up, so none waits for archives that will not come."""
        import json
        body = json.dumps({"run": self.run_id, "msg": msg})
        path = posixpath.join(self.abort_dir, "%s.abort" % self.stack)
        for address in sorted(set(self.targets.values())):
            try:
                # A connection of its own: the one that carried the archives may be the one that stalled.
                client = connect(dict(self.params, target_host=address, connect_timeout=5))
                remote_run(client, "mkdir -p %s && printf %%s %s > %s"
                           % (quote(self.abort_dir), quote(body), quote(path)), timeout=STALL_TIMEOUT)
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass  # a target that cannot be told times out waiting

    def close(self):
        for c in self.clients.values():
            c.close()
