# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Quiescing a service before its checkpoint: PostgreSQL with no open transaction, an HTTP app
drained of requests, or no established connection on a port. Quiesce checks are probe-shaped
callables returning (done, detail), so probes.wait_ready bounds them. (The fence that follows is the
window's: _window/fences.py.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "OPEN_TRANSACTIONS_SQL", "QUIESCE_METHODS", "QUIESCE_SPEC", "QUIESCE_MINIMUMS", "TCP_ESTABLISHED",
    "TCP_LISTEN", "postgres_idle_check", "established_connections", "connections_zero_check", "http_call",
    "http_drained_check", "QuiesceError", "read_tcp_tables", "quiesce_service",
]

import json
import socket
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._services.probes import (
    PostgresError, postgres_query, wait_ready)
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError

from http.client import HTTPConnection
from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec


OPEN_TRANSACTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()")

QUIESCE_METHODS = ["none", "postgres_idle", "http_drain", "connections_zero"]
# A service's quiesce settings, as service_quiesce takes them and a stack's service gives them.
QUIESCE_SPEC = ArgumentSpec(dict(
    method=dict(type="str", choices=QUIESCE_METHODS),
    port=dict(type="int"),
    path=dict(type="str"),
    resume_path=dict(type="str"),
    active_path=dict(type="str"),
    active_key=dict(type="str", no_log=False),
    postgres_user=dict(type="str"),
    postgres_password=dict(type="str", no_log=True),
    postgres_db=dict(type="str"),
    timeout=dict(type="float"),
    interval=dict(type="float"),
), required_if=[("method", "http_drain", ("port",)), ("method", "connections_zero", ("port",))])
QUIESCE_MINIMUMS = dict(port=1, timeout=0.1, interval=0.01)

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def postgres_idle_check(host, port=5432, user="postgres", database="postgres", password=None, timeout=2.0):
    """Done when no client session of the server has a transaction open."""
    def check():
        try:
            rows = postgres_query(host, port, OPEN_TRANSACTIONS_SQL, user=user, database=database,
                                  password=password, timeout=timeout)
        except PostgresError as e:
            return False, str(e)
        n = int(rows[0][0])
        return n == 0, "%d transaction(s) open" % n
    return check


def established_connections(tables, port):
    """Established TCP connections to local port PORT in /proc/PID/net/tcp{,6} texts."""
    count = 0
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == TCP_ESTABLISHED:
                count += 1
    return count


def connections_zero_check(read_tables, port):
    """Done when no client holds a connection to the service's port."""
    def check():
        n = established_connections(read_tables(), port)
        return n == 0, "%d client connection(s) to port %d" % (n, port)
    return check


def http_call(host, port, method, path, timeout=2.0):
    """(status, decoded JSON body or None)."""
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(body.decode("utf-8"))
    except ValueError:
        return resp.status, None


def http_drained_check(host, port, active_path, active_key, timeout=2.0):
    """Done when the application reports no request in flight."""
    def check():
        try:
            status, body = http_call(host, port, "GET", active_path, timeout)
        except (socket.error, OSError) as e:
            return False, "%s:%s%s: %s" % (host, port, active_path, e)
        if status != 200 or not isinstance(body, dict) or active_key not in body:
            return False, "%s answered %s without %r" % (active_path, status, active_key)
        n = int(body[active_key])
        return n == 0, "%d request(s) in flight" % n
    return check


class QuiesceError(StackliftError):
    """A service did not come to rest (its transactions, requests or connections) in time."""


def read_tcp_tables(pid):
    """A reader of the TCP tables of a process's network namespace."""
    def read():
        texts = []
        for table in ("tcp", "tcp6"):
            try:
                with open("/proc/%d/net/%s" % (pid, table)) as f:
                    texts.append(f.read())
            except OSError:
                pass
        return texts
    return read


def quiesce_service(host, pid, spec, state="quiesced", check_mode=False):
    """Quiesce (or resume) one service at HOST, as its ``quiesce`` settings say.

    spec: method (none, postgres_idle, http_drain, connections_zero), port, path, resume_path,
    active_path, active_key, postgres_user, postgres_db, timeout, interval.  Returns what
    service_quiesce reports (changed, quiet, waited, attempts, detail, started_at, finished_at);
    raises QuiesceError.
    """
    method = spec.get("method") or "none"
    started = time.time()
    result = dict(changed=False, quiet=True, waited=0.0, attempts=0, detail="nothing to do", started_at=started)
    if method == "none" or (state == "resumed" and method != "http_drain"):
        result["finished_at"] = time.time()
        return result
    port = spec.get("port")
    if method == "http_drain" and not check_mode:
        hook = spec.get("path") or "/admin/drain" if state == "quiesced" else spec.get("resume_path") or "/admin/resume"
        try:
            status, _body = http_call(host, port, "POST", hook)
        except (socket.error, OSError) as e:
            raise QuiesceError("%s hook %s:%s%s failed: %s" % (state, host, port, hook, e))
        if status >= 300:
            raise QuiesceError("%s hook %s:%s%s answered %d" % (state, host, port, hook, status))
        result["changed"] = True
        if state == "resumed":
            result.update(detail="resumed", finished_at=time.time())
            return result
    if method == "postgres_idle":
        check = postgres_idle_check(host, port or 5432, spec.get("postgres_user") or "postgres",
                                    spec.get("postgres_db") or "postgres", spec.get("postgres_password"))
    elif method == "http_drain":
        check = http_drained_check(host, port, spec.get("active_path") or "/stats", spec.get("active_key") or "active")
    else:
        check = connections_zero_check(read_tcp_tables(pid), port)
    if check_mode:
        quiet, detail = check()
        result.update(changed=method == "http_drain", quiet=quiet, detail=detail, attempts=1, finished_at=time.time())
        return result
    timeout = float(spec.get("timeout") or 30)
    waited = wait_ready(check, retries=10 ** 9, interval=float(spec.get("interval") or 0.1), timeout=timeout)
    result.update(quiet=waited["ready"], waited=waited["elapsed"], attempts=waited["attempts"],
                  detail=waited["detail"], finished_at=time.time())
    if not waited["ready"]:
        raise QuiesceError("did not quiesce (%s) in %.1f s: %s" % (method, timeout, waited["detail"]), **result)
    return result
