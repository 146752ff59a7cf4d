# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fences of a migration window: a container's own (everything but loopback dropped inside its
network namespace, the consistent cut on the source) and the target host's (its restored copies'
addresses cut off from everything routed, until the commit)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.stacklift.migrate.plugins.module_utils.engines.base import EngineError, which as _which
from ansible_collections.stacklift.migrate.plugins.module_utils.hostchecks import process_start
from ansible_collections.stacklift.migrate.plugins.module_utils.quiesce import FENCE_RULES, FENCE_TABLE


# How each character outside [A-Za-z0-9] is written in a table's name: a prefix-free code, so that two
# stack names never share a table (shop-a, shop_a and shop.a once all became stacklift_shop_a).
_ESCAPES = {"_": "__", "-": "_h", ".": "_d"}


def host_fence_table(stack):
    """The name of STACK's host fence table: one stack's, never another's (nft allows 255 characters)."""
    return "stacklift_" + re.sub(r"[^A-Za-z0-9]", lambda m: _ESCAPES.get(m.group(0), "_u%06x" % ord(m.group(0))),
                                 stack)


# Idempotent: raised again (a rerun, a rollback), the chain is flushed and its rules written once; the sets
# keep the addresses already fenced.
HOST_FENCE_RULES = (
    "table inet {t} {{\n"
    "  set v4 {{ type ipv4_addr; }}\n  set v6 {{ type ipv6_addr; }}\n"
    "  chain forward {{ type filter hook forward priority -300; policy accept; }}\n"
    "}}\n"
    "flush chain inet {t} forward\n"
    "add rule inet {t} forward ip saddr @v4 ip daddr @v4 accept\n"
    "add rule inet {t} forward ip6 saddr @v6 ip6 daddr @v6 accept\n"
    "add rule inet {t} forward ip saddr @v4 drop\n"
    "add rule inet {t} forward ip daddr @v4 drop\n"
    "add rule inet {t} forward ip6 saddr @v6 drop\n"
    "add rule inet {t} forward ip6 daddr @v6 drop\n")


class Host(object):
    """What an agent needs of its host: the engine, a command runner, the binaries and /proc."""

    def __init__(self, engine, run, nsenter="nsenter", nft="nft", conntrack="conntrack"):
        self.engine = engine
        self.run = run  # run(argv, data=None) -> (rc, out, err)
        self.nsenter = nsenter
        self.nft = nft
        self.conntrack = _which(conntrack)
        self.proc = "/proc"

    def process_start(self, pid):
        """When the host's process PID started, or None (no such process)."""
        return process_start(pid, self.proc) if pid else None

    def _nft(self, args, data=None, netns_pid=None, what="nft"):
        argv = ([self.nsenter, "-t", str(netns_pid), "-n"] if netns_pid else []) + [self.nft] + list(args)
        rc, out, err = self.run(argv, data=data) if data is not None else self.run(argv)
        if rc != 0:
            raise EngineError("%s failed: %s" % (what, (err or out).strip()), cmd=argv, rc=rc, stdout=out, stderr=err)
        return out

    # A container's own fence (the source side): everything but loopback dropped.
    def container_fenced(self, pid):
        argv = [self.nsenter, "-t", str(pid), "-n", self.nft, "list", "table", "inet", FENCE_TABLE]
        return self.run(argv)[0] == 0

    def fence_container(self, pid, name):
        self._nft(["-f", "-"], data=FENCE_RULES, netns_pid=pid, what="fencing %s" % name)

    def unfence_container(self, pid, name):
        if self.container_fenced(pid):
            self._nft(["delete", "table", "inet", FENCE_TABLE], netns_pid=pid, what="lifting the fence of %s" % name)

    # The target host's fence: its restored copies' addresses cut off from everything routed but each
    # other (an app's restored connection to its database must work while its readiness is probed; with
    # br_netfilter, even traffic between two containers on one bridge passes this hook).
    def raise_host_fence(self, table):
        self._nft(["-f", "-"], data=HOST_FENCE_RULES.format(t=table), what="raising the target's fence")

    def fence_addresses(self, table, addresses):
        """Fence ADDRESSES before a restore here, and forget this host's connection tracking of them: an
        entry left from when the stack ran here before holds the old sequence numbers, and the restored
        connections' packets would be dropped as invalid (found moving stacks back after a drain)."""
        for ip in addresses:
            family = "v6" if ipaddress.ip_address(ip).version == 6 else "v4"
            self._nft(["add", "element", "inet", table, family, "{ %s }" % ip], what="fencing %s" % ip)
            for way in ("-s", "-d") if self.conntrack else ():  # rc 1: none; no conntrack: the preflight warns
                self.run([self.conntrack, "-D", way, ip])

    def host_fence_up(self, table):
        return self.run([self.nft, "list", "table", "inet", table])[0] == 0

    def lift_host_fence(self, table):
        if self.host_fence_up(table):
            self._nft(["delete", "table", "inet", table], what="lifting the target's fence")
