# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Quiescing a service before its checkpoint, and fencing a stack for a consistent cut.

Quiesce checks are probe-shaped callables returning (done, detail), so
probes.wait_ready bounds them. The fence is an nftables table in a
container's network namespace that drops everything but loopback: peers see
silence, not resets, CRIU saves each side's TCP queues, and after the restore
the kernel retransmits. The table dies with the old namespace, since the
engine makes a new one on restore.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

from ansible_collections.stacklift.migrate.plugins.module_utils.probes import PostgresError, postgres_query

try:
    from http.client import HTTPConnection
except ImportError:  # pragma: no cover
    from httplib import HTTPConnection

FENCE_TABLE = "stacklift_fence"
# Priority -300 puts the fence before any filter or NAT chain the engine installed.
FENCE_RULES = """table inet %s {
  chain input { type filter hook input priority -300; policy drop; iifname "lo" accept; }
  chain output { type filter hook output priority -300; policy drop; oifname "lo" accept; }
}
""" % FENCE_TABLE

OPEN_TRANSACTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()")

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def postgres_idle_check(host, port=5432, user="postgres", database="postgres", timeout=2.0):
    """Done when no client session of the server has a transaction open."""
    def check():
        try:
            rows = postgres_query(host, port, OPEN_TRANSACTIONS_SQL, user=user, database=database, timeout=timeout)
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
