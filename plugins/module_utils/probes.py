# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Readiness probes and the loop that waits on them.

Each probe is a callable returning (ready, detail).  They speak the protocols
themselves (PostgreSQL's startup and simple query messages, Redis' RESP), so a
host needs no client libraries.  ``wait_ready`` adds retries, an overall
timeout, a stability window (ready N seconds in a row) and a progress check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket
import ssl
import struct
import time

try:
    from http.client import HTTPConnection, HTTPSConnection
except ImportError:  # pragma: no cover (Python 2)
    from httplib import HTTPConnection, HTTPSConnection

PROBE_TYPES = ["tcp", "http", "command", "postgres", "redis"]


def tcp_probe(host, port, timeout=2.0):
    def probe():
        try:
            s = socket.create_connection((host, port), timeout=timeout)
        except (socket.error, OSError) as e:
            return False, "tcp %s:%s: %s" % (host, port, e)
        s.close()
        return True, "tcp %s:%s accepts connections" % (host, port)
    return probe


def http_probe(host, port, path="/", scheme="http", status_codes=(200,), body_regex=None,
               validate_certs=True, timeout=2.0):
    pattern = re.compile(body_regex) if body_regex else None

    def probe():
        if scheme == "https":
            ctx = ssl.create_default_context()
            if not validate_certs:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            conn = HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            conn = HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read(65536).decode("utf-8", "replace")
        except (socket.error, OSError, ssl.SSLError) as e:
            return False, "%s://%s:%s%s: %s" % (scheme, host, port, path, e)
        finally:
            conn.close()
        if resp.status not in status_codes:
            return False, "%s%s answered %d, expected %s" % (host, path, resp.status, list(status_codes))
        if pattern and not pattern.search(body):
            return False, "%s%s body does not match %r" % (host, path, body_regex)
        return True, "%s%s answered %d" % (host, path, resp.status)
    return probe


def command_probe(run, argv):
    """run(argv) -> (rc, out, err); ready when the command exits 0."""
    def probe():
        rc, out, err = run(argv)
        if rc == 0:
            return True, "command exited 0"
        return False, "command exited %d: %s" % (rc, (err or out or "").strip()[-200:])
    return probe


def _pg_message(kind, payload):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def _pg_read(sock):
    head = _recv_exact(sock, 5)
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    return kind, _recv_exact(sock, length - 4)


class PostgresError(Exception):
    pass


def postgres_query(host, port, sql, user="postgres", database="postgres", timeout=2.0):
    """Run one query over the simple query protocol (trust auth); the rows, each a list of strings."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (socket.error, OSError) as e:
        raise PostgresError("postgres %s:%s: %s" % (host, port, e))
    try:
        params = b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        body = struct.pack("!I", 196608) + params
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, payload = _pg_read(sock)
            if kind == b"R" and struct.unpack("!I", payload[:4])[0] != 0:
                raise PostgresError("postgres asks for a password; only trust authentication is supported")
            if kind == b"E":
                raise PostgresError("postgres: %s" % _pg_error(payload))
            if kind == b"Z":
                break
        sock.sendall(_pg_message(b"Q", sql.encode() + b"\x00"))
        rows, error = [], None
        while True:
            kind, payload = _pg_read(sock)
            if kind == b"D":
                rows.append(_pg_row(payload))
            elif kind == b"E":
                error = _pg_error(payload)
            elif kind == b"Z":
                break
        sock.sendall(_pg_message(b"X", b""))
    except (socket.error, OSError, EOFError, struct.error) as e:
        raise PostgresError("postgres %s:%s: %s" % (host, port, e))
    finally:
        sock.close()
    if error:
        raise PostgresError("postgres: %s" % error)
    return rows


def _pg_row(payload):
    count = struct.unpack("!H", payload[:2])[0]
    pos, row = 2, []
    for _col in range(count):
        n = struct.unpack("!i", payload[pos:pos + 4])[0]
        pos += 4
        row.append(None if n < 0 else payload[pos:pos + n].decode("utf-8", "replace"))
        pos += max(n, 0)
    return row


def postgres_probe(host, port=5432, user="postgres", database="postgres", timeout=2.0):
    """Ready when the server accepts a session (trust auth) and answers SELECT 1."""
    def probe():
        try:
            rows = postgres_query(host, port, "SELECT 1", user=user, database=database, timeout=timeout)
        except PostgresError as e:
            return False, str(e)
        if rows != [["1"]]:
            return False, "postgres answered SELECT 1 with %r" % (rows,)
        return True, "postgres accepts sessions and answers SELECT 1"
    return probe


def _pg_error(payload):
    fields = dict((f[:1], f[1:].decode("utf-8", "replace")) for f in payload.split(b"\x00") if f)
    return fields.get(b"M", "error")


def redis_probe(host, port=6379, password=None, timeout=2.0):
    """Ready when PING answers PONG."""
    def probe():
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except (socket.error, OSError) as e:
            return False, "redis %s:%s: %s" % (host, port, e)
        try:
            if password:
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode()))
                if not sock.recv(512).startswith(b"+OK"):
                    return False, "redis refused the password"
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(512)
        except (socket.error, OSError) as e:
            return False, "redis %s:%s: %s" % (host, port, e)
        finally:
            sock.close()
        if reply.startswith(b"+PONG"):
            return True, "redis answered PONG"
        return False, "redis answered %r" % reply[:80]
    return probe


def wait_ready(probe, retries=60, interval=1.0, timeout=None, stable_for=0.0, progress=None,
               baseline=None, clock=time.time, sleep=time.sleep):
    """Call probe until it is ready (and stays ready for stable_for seconds).

    progress: optional callable returning a value that must differ from the
    baseline (given, or else its first value), e.g. a counter that must move.
    Returns a dict: ready, attempts, elapsed, detail, history of the last details.
    """
    start = clock()
    attempts = 0
    ready_since = None
    detail = ""
    if progress and baseline is None:
        baseline = progress()
    progress_value = baseline
    while True:
        attempts += 1
        ok, detail = probe()
        if ok and progress:
            progress_value = progress()
            if progress_value is None:
                ok, detail = False, "no progress: the progress check gave no value"
            elif progress_value == baseline:
                ok, detail = False, "no progress: value still %r" % (baseline,)
        now = clock()
        if ok:
            ready_since = ready_since if ready_since is not None else now
            if now - ready_since >= stable_for:
                return {"ready": True, "attempts": attempts, "elapsed": round(now - start, 3), "detail": detail,
                        "progress_baseline": baseline, "progress_value": progress_value}
        else:
            ready_since = None
        out_of_time = timeout is not None and now - start + interval > timeout
        if attempts >= retries or out_of_time:
            return {"ready": False, "attempts": attempts, "elapsed": round(now - start, 3), "detail": detail,
                    "progress_baseline": baseline, "progress_value": progress_value}
        sleep(interval)


DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "http": 80}


def probe_for(spec, address, run_command=None, exec_command=None):
    """The probe a service's description asks for (service_probe's options), aimed at ADDRESS.

    run_command(argv) -> (rc, out, err) and exec_command(container, argv) -> argv serve the
    V(command) probe.
    """
    kind = spec["type"]
    scheme = spec.get("scheme") or "http"
    port = spec.get("port") or (443 if kind == "http" and scheme == "https" else DEFAULT_PORTS.get(kind))
    t = spec.get("connect_timeout") or 2.0
    if kind == "tcp":
        return tcp_probe(address, port, timeout=t)
    if kind == "http":
        return http_probe(address, port, path=spec.get("path") or "/", scheme=scheme,
                          status_codes=spec.get("status_code") or [200], body_regex=spec.get("body_regex"),
                          validate_certs=spec.get("validate_certs", True), timeout=t)
    if kind == "postgres":
        return postgres_probe(address, port, user=spec.get("postgres_user") or "postgres",
                              database=spec.get("postgres_db") or "postgres", timeout=t)
    if kind == "redis":
        return redis_probe(address, port, password=spec.get("redis_password"), timeout=t)
    return command_probe(run_command, exec_command(spec["container"], spec["command"]))
