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

__all__ = [
    "PROBE_TYPES", "PROBE_SPEC", "PROBE_MINIMUMS", "below_minimums", "tcp_probe", "http_probe", "command_probe",
    "PostgresError", "postgres_query", "PG_AUTH_NAMES", "ScramSha256", "postgres_probe", "resp_command",
    "redis_probe", "wait_ready", "DEFAULT_PORTS", "probe_for",
]

import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import struct
import time
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

from http.client import HTTPConnection, HTTPSConnection
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec

PROBE_TYPES = ["tcp", "http", "command", "postgres", "redis"]

# A probe's options, as service_probe takes them and as a stack's service gives them in ``probe``.
# No defaults here: a stack leaves unset what the window decides; service_probe adds its own.
PROBE_SPEC = ArgumentSpec(dict(
    type=dict(type="str", choices=PROBE_TYPES),
    host=dict(type="str"),
    network=dict(type="str"),
    port=dict(type="int"),
    path=dict(type="str"),
    scheme=dict(type="str", choices=["http", "https"]),
    status_code=dict(type="list", elements="int"),
    body_regex=dict(type="str"),
    validate_certs=dict(type="bool"),
    command=dict(type="list", elements="str"),
    postgres_user=dict(type="str"),
    postgres_password=dict(type="str", no_log=True),
    postgres_db=dict(type="str"),
    redis_user=dict(type="str"),
    redis_password=dict(type="str", no_log=True),
    retries=dict(type="int"),
    interval=dict(type="float"),
    timeout=dict(type="float"),
    connect_timeout=dict(type="float"),
    stable_for=dict(type="float"),
    progress_command=dict(type="list", elements="str"),
    progress_baseline=dict(type="str"),
))
# The least each number may be: a probe needs one attempt and a positive wait between attempts.
PROBE_MINIMUMS = dict(port=1, retries=1, interval=0.01, timeout=0.1, connect_timeout=0.1, stable_for=0)


def below_minimums(params, minimums):
    """Problems with numbers under their minimum, e.g. ["interval must be at least 0.01, not -1"]."""
    problems = []
    for key in sorted(minimums):
        value = params.get(key)
        if value is not None and value < minimums[key]:
            problems.append("%s must be at least %s, not %s" % (key, minimums[key], value))
    return problems


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
        except (OSError, ssl.SSLError) as e:
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


class PostgresError(StackliftError):
    """PostgreSQL refused, or answered what a probe did not expect."""


def postgres_query(host, port, sql, user="postgres", database="postgres", password=None, timeout=2.0):
    """Run one query over the simple query protocol; the rows, each a list of strings.

    Authenticates as the server asks: trust, scram-sha-256, md5 or password (the last two only
    with PASSWORD given).
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (socket.error, OSError) as e:
        raise PostgresError("postgres %s:%s: %s" % (host, port, e))
    try:
        params = b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        body = struct.pack("!I", 196608) + params
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        scram = None
        while True:
            kind, payload = _pg_read(sock)
            if kind == b"R":
                scram = _pg_authenticate(sock, struct.unpack("!I", payload[:4])[0], payload[4:], user, password, scram)
            elif kind == b"E":
                raise PostgresError("postgres: %s" % _pg_error(payload))
            elif kind == b"Z":
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
    except (OSError, EOFError, struct.error) as e:
        raise PostgresError("postgres %s:%s: %s" % (host, port, e))
    finally:
        sock.close()
    if error:
        raise PostgresError("postgres: %s" % error)
    return rows


PG_AUTH_NAMES = {3: "password", 5: "md5", 10: "scram-sha-256"}


def _pg_authenticate(sock, code, data, user, password, scram):
    """Answer one authentication request; returns the SCRAM exchange in progress (or None)."""
    if code == 0:  # AuthenticationOk
        return None
    if code in PG_AUTH_NAMES and password is None:
        raise PostgresError("postgres asks for a password (%s authentication); set postgres_password"
                            % PG_AUTH_NAMES[code])
    if code == 3:
        sock.sendall(_pg_message(b"p", password.encode("utf-8") + b"\x00"))
    elif code == 5:
        inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8")).hexdigest()
        outer = hashlib.md5(inner.encode("ascii") + data[:4]).hexdigest()
        sock.sendall(_pg_message(b"p", b"md5" + outer.encode("ascii") + b"\x00"))
    elif code == 10:
        mechanisms = [m for m in data.split(b"\x00") if m]
        if b"SCRAM-SHA-256" not in mechanisms:
            raise PostgresError("postgres offers SASL %s; only SCRAM-SHA-256 is supported"
                                % b", ".join(mechanisms).decode("ascii", "replace"))
        scram = ScramSha256(password)
        first = scram.client_first()
        sock.sendall(_pg_message(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!I", len(first)) + first))
        return scram
    elif code == 11 and scram is not None:
        sock.sendall(_pg_message(b"p", scram.client_final(data)))
        return scram
    elif code == 12 and scram is not None:
        scram.verify_server(data)
        return None
    else:
        raise PostgresError("postgres asks for an authentication stacklift does not speak (code %d)" % code)
    return None


class ScramSha256:
    """The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it."""

    def __init__(self, password, nonce=None, username=""):
        # PostgreSQL takes the user from the startup message and ignores SCRAM's (left empty).
        self.password = password.encode("utf-8")
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        self.first_bare = "n=%s,r=%s" % (username, self.nonce)
        self.server_signature = None

    def client_first(self):
        return ("n,," + self.first_bare).encode("ascii")

    def client_final(self, server_first):
        text = server_first.decode("ascii")
        attrs = dict(part.split("=", 1) for part in text.split(","))
        if not attrs.get("r", "").startswith(self.nonce):
            raise PostgresError("postgres SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=%s" % attrs["r"]
        auth_message = ",".join([self.first_bare, text, without_proof]).encode("ascii")
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(bytearray(a ^ b for a, b in zip(bytearray(client_key), bytearray(signature))))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode("ascii"))).encode("ascii")

    def verify_server(self, server_final):
        attrs = dict(part.split("=", 1) for part in server_final.decode("ascii").split(","))
        if base64.b64decode(attrs.get("v", "")) != self.server_signature:
            raise PostgresError("postgres SCRAM: the server's signature is wrong (not the server we asked)")


def _pg_row(payload):
    count = struct.unpack("!H", payload[:2])[0]
    pos, row = 2, []
    for _col in range(count):
        n = struct.unpack("!i", payload[pos:pos + 4])[0]
        pos += 4
        row.append(None if n < 0 else payload[pos:pos + n].decode("utf-8", "replace"))
        pos += max(n, 0)
    return row


def postgres_probe(host, port=5432, user="postgres", database="postgres", password=None, timeout=2.0):
    """Ready when the server accepts a session and answers SELECT 1."""
    def probe():
        try:
            rows = postgres_query(host, port, "SELECT 1", user=user, database=database, password=password,
                                  timeout=timeout)
        except PostgresError as e:
            return False, str(e)
        if rows != [["1"]]:
            return False, "postgres answered SELECT 1 with %r" % (rows,)
        return True, "postgres accepts sessions and answers SELECT 1"
    return probe


def _pg_error(payload):
    fields = {f[:1]: f[1:].decode("utf-8", "replace") for f in payload.split(b"\x00") if f}
    return fields.get(b"M", "error")


def resp_command(*words):
    """One RESP command, e.g. resp_command("AUTH", "user", "secret")."""
    out = b"*%d\r\n" % len(words)
    for word in words:
        data = word.encode("utf-8") if not isinstance(word, bytes) else word
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def redis_probe(host, port=6379, password=None, user=None, timeout=2.0):
    """Ready when PING answers PONG (after AUTH with PASSWORD, as USER when given: an ACL user)."""
    def probe():
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except (socket.error, OSError) as e:
            return False, "redis %s:%s: %s" % (host, port, e)
        try:
            if password is not None:
                sock.sendall(resp_command("AUTH", *([user, password] if user else [password])))
                answer = sock.recv(512)
                if not answer.startswith(b"+OK"):
                    return False, "redis refused the credentials: %s" % answer[:80].decode("utf-8", "replace").strip()
            sock.sendall(resp_command("PING"))
            reply = sock.recv(512)
        except (socket.error, OSError) as e:
            return False, "redis %s:%s: %s" % (host, port, e)
        finally:
            sock.close()
        if reply.startswith(b"+PONG"):
            return True, "redis answered PONG"
        if reply.startswith(b"-NOAUTH"):
            return False, "redis asks for a password; set redis_password (and redis_user for an ACL user)"
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
                              database=spec.get("postgres_db") or "postgres",
                              password=spec.get("postgres_password"), timeout=t)
    if kind == "redis":
        return redis_probe(address, port, password=spec.get("redis_password"), user=spec.get("redis_user"), timeout=t)
    return command_probe(run_command, exec_command(spec["container"], spec["command"]))
