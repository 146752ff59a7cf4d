# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host-to-host streams over SSH (paramiko), so data never passes through the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "HAS_PARAMIKO", "PARAMIKO_IMPORT_ERROR", "HOST_KEY_POLICIES", "KNOWN_HOSTS", "CHUNK", "KEEPALIVE",
    "STALL_TIMEOUT", "SSH_SPEC", "TransferError", "parse_endpoint", "known_hosts_name", "hops",
    "load_private_key", "save_known_hosts", "connect", "as_root", "remote_run", "remote_sha256", "Watchdog",
    "PUSH_SCRIPT", "push_file", "send_stream", "stream_to_remote", "clock_offset", "link_throughput",
]

import fcntl
import io
import os
import posixpath
import socket
import subprocess
import threading
import time
import traceback
import uuid

from shlex import quote

from ansible_collections.stacklift.migrate.plugins.module_utils._common.files import NOFOLLOW
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec

try:
    import paramiko
    HAS_PARAMIKO = True
    PARAMIKO_IMPORT_ERROR = None
except ImportError:
    HAS_PARAMIKO = False
    PARAMIKO_IMPORT_ERROR = traceback.format_exc()

HOST_KEY_POLICIES = ["strict", "accept_new", "ignore"]
# stacklift's own known hosts: the preflight puts each target's key there, read over the connection
# the controller already trusts, so the first connection from a source to a target is checked too.
KNOWN_HOSTS = "/var/lib/stacklift/known_hosts"
CHUNK = 1 << 20
# A target that stops answering must not hang a migration while its stack is frozen: SSH keepalives,
# and no read or write may wait longer than this for progress.
KEEPALIVE = 5
STALL_TIMEOUT = 15

SSH_SPEC = ArgumentSpec(dict(
    target_host=dict(type="str", required=True),
    target_port=dict(type="int", default=22),
    target_user=dict(type="str", default="root"),
    key_file=dict(type="path"),
    private_key=dict(type="str", no_log=True),
    host_key_checking=dict(type="str", default="strict", choices=HOST_KEY_POLICIES),
    known_hosts_file=dict(type="path", default=KNOWN_HOSTS),
    connect_timeout=dict(type="int", default=10),
))


class TransferError(StackliftError):
    """A copy between hosts failed; the details say where and how."""


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


def hops(address):
    """The hops of an SSH endpoint: ``jump1,jump2,target`` reaches the target through the jump hosts
    in that order, as OpenSSH's ProxyJump does; each hop is ``[user@]host[:port]``."""
    return [a.strip() for a in address.split(",") if a.strip()]


def load_private_key(text):
    """A paramiko key from a private key's text (OpenSSH or PEM; Ed25519, ECDSA or RSA), as an AWX
    credential gives it."""
    problems = []
    for kind in ("Ed25519Key", "ECDSAKey", "RSAKey"):
        cls = getattr(paramiko, kind, None)
        if cls is None:
            continue
        try:
            return cls.from_private_key(io.StringIO(text.strip() + "\n"))
        except (paramiko.SSHException, ValueError, TypeError) as e:
            problems.append("%s: %s" % (kind, e))
    raise TransferError("private_key is not an unencrypted Ed25519, ECDSA or RSA private key (%s)"
                        % "; ".join(problems))


if HAS_PARAMIKO:
    class HopClient(paramiko.SSHClient):
        """An SSH client to the target that also holds the jump hosts' clients, closed with it; ``sudo``
        says commands on the target run through ``sudo -n`` (its user is not root)."""

        def __init__(self):
            super().__init__()
            self.jumps = []
            self.sudo = False

        def close(self):
            super().close()
            for jump in reversed(self.jumps):
                jump.close()


def _connect_hop(params, user, host, port, pkey, sock):
    client = HopClient()
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
    where = "%s@%s:%s" % (user, host, port)
    # A key given (its text, or a file on this host) is the only one tried; without one, the SSH agent
    # (SSH_AUTH_SOCK) and the usual keys in ~/.ssh, as OpenSSH's client does.
    key_file = None if pkey is not None else (params.get("key_file") or None)
    default_keys = pkey is None and key_file is None
    try:
        client.connect(host, port=port, username=user, pkey=pkey, key_filename=key_file, sock=sock,
                       timeout=params["connect_timeout"], banner_timeout=params["connect_timeout"],
                       auth_timeout=params["connect_timeout"], allow_agent=default_keys,
                       look_for_keys=default_keys)
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
            save_known_hosts(client.get_host_keys(), known)
        except OSError:
            pass
    client.get_transport().set_keepalive(KEEPALIVE)
    client.sudo = user != "root"
    return client


def save_known_hosts(keys, known):
    """Add KEYS (paramiko HostKeys) to the known hosts file KNOWN, as one atomic step under a lock:
    sources sending to their targets at once, each learning a key, never lose one another's."""
    os.makedirs(os.path.dirname(known), 0o700, exist_ok=True)
    fd = os.open(known + ".lock", os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        merged = paramiko.HostKeys()
        if os.path.exists(known):
            merged.load(known)
        for host, entry in keys.items():
            for ktype, key in entry.items():
                merged.add(host, ktype, key)
        tmp = "%s.%s.tmp" % (known, uuid.uuid4().hex[:8])
        merged.save(tmp)
        os.chmod(tmp, 0o600)
        os.rename(tmp, known)
    finally:
        os.close(fd)


def connect(params):
    """An SSH client to the target host named in a module's SSH_SPEC params; its target_host
    may give the user and port too (``root@192.0.2.12:2222``), and jump hosts before it
    (``root@192.0.2.13:22,root@192.0.2.12:22``). A target user other than root runs the target's
    commands through ``sudo -n`` (see as_root)."""
    pkey = load_private_key(params["private_key"]) if params.get("private_key") else None
    path = [parse_endpoint(hop, params["target_user"], params["target_port"])
            for hop in hops(params["target_host"])]
    if not path:
        raise TransferError("no target host given")
    jumps = []
    sock = None
    try:
        for i, (user, host, port) in enumerate(path):
            client = _connect_hop(params, user, host, port, pkey, sock)
            if i == len(path) - 1:
                client.jumps = jumps
                return client
            jumps.append(client)
            _nuser, nhost, nport = path[i + 1]
            try:
                sock = client.get_transport().open_channel("direct-tcpip", (nhost, nport), ("127.0.0.1", 0),
                                                           timeout=params["connect_timeout"])
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise TransferError("the jump host %s@%s:%s cannot open a connection to %s:%s: %s"
                                    % (user, host, port, nhost, nport, e))
    except BaseException:
        for jump in reversed(jumps):
            jump.close()
        raise


def as_root(client, cmd):
    """CMD run as root on the target: through ``sudo -n`` (no password asked, none waited for) when
    the client logged in as another user."""
    if getattr(client, "sudo", False):
        return "sudo -n sh -c %s" % quote(cmd)
    return cmd


def remote_run(client, cmd, timeout=600):
    """Run a shell command on the target, as root; returns (rc, stdout, stderr)."""
    stdin, stdout, stderr = client.exec_command(as_root(client, cmd), timeout=timeout)
    stdin.close()
    out = stdout.read().decode("utf-8", "replace")
    err = stderr.read().decode("utf-8", "replace")
    return stdout.channel.recv_exit_status(), out, err


def remote_sha256(client, path):
    rc, out, err = remote_run(client, "sha256sum %s 2>/dev/null" % quote(path), timeout=STALL_TIMEOUT * 4)
    return out.split()[0] if rc == 0 and out.strip() else None


class Watchdog:
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


# One command on the target per file: make the directory, write the temporary name, check its sha256,
# rename it into place; its exit code says which step failed.
# The digest is taken of the bytes as they arrive (tee into the part file and sha256sum), not by reading the
# file back after its last byte: no silent minutes at the end of a large archive, for the target's stall
# watch or inside the pause. A write tee could not make shows as a part file of the wrong size.
PUSH_SCRIPT = (
    "d={d}; t={t}; {{ test -d \"$d\" || mkdir -p -m {dir_mode:o} \"$d\"; }} || exit 10; "
    "umask 077; s=$(tee \"$t\" | sha256sum); s=${{s%% *}}; "
    "[ \"$(stat -c %s \"$t\" 2>/dev/null)\" = {size} ] || {{ rm -f \"$t\"; exit 11; }}; chmod {mode:o} \"$t\"; "
    "[ \"$s\" = {sha} ] || {{ rm -f \"$t\"; echo \"$s\"; exit 12; }}; "
    "mv -f \"$t\" {f} || {{ rm -f \"$t\"; exit 13; }}"
)


def push_file(client, local_path, remote_path, expected_sha256, mode=0o600, dir_mode=0o700):
    """Copy a file to the target under a temporary name, check it, then rename it into place.

    An interrupted copy leaves at most the temporary file, never one under the final name. A
    target that stops answering ends it within STALL_TIMEOUT (the Watchdog), with a clean error.
    The file is written by one command run as root on the target (through sudo when the target's
    user is not root), so it lands in directories only root may write, in one round trip.
    """
    remote_dir = posixpath.dirname(remote_path)
    tmp = posixpath.join(remote_dir, ".%s.part-%s" % (posixpath.basename(remote_path), uuid.uuid4().hex[:8]))
    watchdog = Watchdog(client)
    sent = 0
    start = time.time()
    chan = None
    try:
        chan = client.get_transport().open_session(timeout=STALL_TIMEOUT)
        chan.settimeout(STALL_TIMEOUT)
        # Only a directory made here gets DIR_MODE: an existing one (say /tmp) keeps its own.
        chan.exec_command(as_root(client, PUSH_SCRIPT.format(d=quote(remote_dir), t=quote(tmp), f=quote(remote_path),
                                                             sha=quote(expected_sha256), mode=mode, dir_mode=dir_mode,
                                                             size=os.path.getsize(local_path))))
        with open(local_path, "rb") as src:
            for block in iter(lambda: src.read(CHUNK), b""):
                chan.sendall(block)
                sent += len(block)
                watchdog.touch()
        chan.shutdown_write()
        watchdog.touch()  # the target has its digest already: it checks the size and renames
        rc = chan.recv_exit_status()
        if rc != 0:
            out = b""
            while chan.recv_ready():
                out += chan.recv(65536)
            err = _drain_stderr(chan).strip()
            got = out.decode("utf-8", "replace").strip()
            if rc == 12:
                raise TransferError("%s arrived with sha256 %s, expected %s; the final name was not touched"
                                    % (remote_path, got or "(none)", expected_sha256))
            what = {10: "cannot create %s on the target" % remote_dir,
                    11: "writing %s on the target failed after %d bytes" % (remote_path, sent),
                    13: "cannot rename %s into place on the target" % remote_path}.get(
                rc, "sending %s to the target failed (%d)" % (remote_path, rc))
            raise TransferError("%s: %s; the final name was not touched" % (what, err or "no message"), stderr=err)
    except BaseException as e:
        stalled = watchdog.fired or isinstance(e, socket.timeout)
        if stalled:
            raise TransferError("the transfer of %s to the target stalled for %g s after %d bytes; the final "
                                "name was not touched" % (remote_path, STALL_TIMEOUT, sent))
        if isinstance(e, (OSError, EOFError, paramiko.SSHException)):
            # a full disk, a dropped connection: a clean error, with what the target said, not a traceback
            said = _drain_stderr(chan).strip() if chan is not None else ""
            raise TransferError("sending %s to the target failed after %d bytes: %s%s; the final name was not "
                                "touched" % (remote_path, sent, e or type(e).__name__,
                                             " (the target: %s)" % said if said else ""))
        raise
    finally:
        watchdog.stop()
        if chan is not None:
            chan.close()
    return {"bytes": sent, "seconds": round(time.time() - start, 3)}


def _drain_stderr(chan):
    err = b""
    try:
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
    except (OSError, EOFError, socket.timeout):
        pass
    return err.decode("utf-8", "replace")


class _Closer:
    """What a stalled stream closes: the connection and the local command feeding it."""

    def __init__(self, client, proc):
        self.client, self.proc = client, proc

    def close(self):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()


def send_stream(client, remote_cmd, blocks, what, timeout=1800, closer=None):
    """Send the byte strings BLOCKS into REMOTE_CMD's stdin on the target; returns bytes, seconds and its stdout.
    A stream that makes no progress for STALL_TIMEOUT (either end silent), or a remote command that has not
    ended TIMEOUT seconds after the last byte, ends with a TransferError naming WHAT, never a hang or a
    traceback. CLOSER (default the client) is what a stall closes."""
    start = time.time()
    watchdog = Watchdog(closer or client)
    sent, chan = 0, None
    try:
        chan = client.get_transport().open_session(timeout=STALL_TIMEOUT)
        chan.settimeout(STALL_TIMEOUT)
        chan.exec_command(as_root(client, remote_cmd))
        for block in blocks:
            chan.sendall(block)
            sent += len(block)
            watchdog.touch()
        chan.shutdown_write()
        watchdog.touch(timeout)  # the remote command takes in what it was sent
        chan.settimeout(timeout)
        out = b""
        for data in iter(lambda: chan.recv(65536), b""):
            out += data
        err = _drain_stderr(chan)
        remote_rc = chan.recv_exit_status()
    except (OSError, EOFError, socket.timeout, paramiko.SSHException) as e:
        if watchdog.fired or isinstance(e, socket.timeout):
            raise TransferError("the stream of %s to the target stalled for %g s after %d bytes"
                                % (what, STALL_TIMEOUT, sent))
        said = _drain_stderr(chan).strip() if chan is not None else ""
        raise TransferError("the stream of %s to the target failed after %d bytes: %s%s"
                            % (what, sent, e or type(e).__name__, " (the target: %s)" % said[-500:] if said else ""))
    finally:
        watchdog.stop()
        if chan is not None:
            chan.close()
    if remote_rc != 0:
        raise TransferError("%s failed on the target (%d): %s" % (remote_cmd, remote_rc, err.strip()),
                            rc=remote_rc, stdout=out.decode("utf-8", "replace"), stderr=err)
    return {"bytes": sent, "seconds": round(time.time() - start, 3), "stdout": out.decode("utf-8", "replace")}


def stream_to_remote(local_argv, client, remote_cmd, timeout=1800):
    """Pipe a local command's stdout into a remote command's stdin (send_stream); returns bytes and timings.
    The local command's failure is the one reported when both ends fail."""
    proc = subprocess.Popen(local_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stats = send_stream(client, remote_cmd, iter(lambda: proc.stdout.read(CHUNK), b""), " ".join(local_argv),
                            timeout=timeout, closer=_Closer(client, proc))
    except TransferError:
        if proc.poll() is None:  # stopped with the stream: its own status says nothing
            proc.kill()
            proc.wait()
        elif proc.returncode > 0:  # it failed by itself (a signal here is the stall watch's)
            _local_failed(local_argv, proc)
        raise
    _local_failed(local_argv, proc)
    return stats


def _local_failed(local_argv, proc):
    """Raise the local command's failure, once it ended (a TransferError with its stderr)."""
    rc = proc.wait()
    if rc:
        err = proc.stderr.read().decode("utf-8", "replace")
        raise TransferError("%s failed (%d): %s" % (" ".join(local_argv), rc, err.strip()), rc=rc, stderr=err)


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


def link_throughput(client, nbytes=32 << 20):
    """MB/s of NBYTES (incompressible) sent to the target over CLIENT, as the archives go: through an SSH channel
    into a command there (here ``cat > /dev/null``)."""
    block = os.urandom(CHUNK)
    chan = client.get_transport().open_session(timeout=STALL_TIMEOUT)
    chan.settimeout(STALL_TIMEOUT)
    try:
        chan.exec_command("cat > /dev/null")
        start = time.time()
        sent = 0
        while sent < nbytes:
            chan.sendall(block)
            sent += len(block)
        chan.shutdown_write()
        chan.recv_exit_status()
        return round(sent / 1e6 / max(time.time() - start, 1e-6), 1)
    finally:
        chan.close()
