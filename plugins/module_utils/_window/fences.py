# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fences of a migration window: a container's own (everything but loopback dropped inside its
network namespace, the consistent cut on the source) and the target host's (its restored copies'
addresses cut off from everything routed, until the commit)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "host_fence_table", "HOST_FENCE_FAMILIES", "FORWARD_FAMILIES", "HOST_FENCE_RULES", "HOST_FENCE_ANSWERS",
    "HOST_FENCE_INGRESS", "host_fence_script", "Host",
    "FENCE_TABLE", "FENCE_RULES", "ESTABLISHED_REJECT", "CRIU_MARK", "ICMP_RATELIMIT", "lift_answers_command",
]

import ipaddress
import json
import os
import re

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import EngineError, which as _which
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import lazy, precopy
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.pages import remove_tree
from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import (
    container_memory_bytes, memory_bytes, memory_scratch, process_start, shared_writable_files)


# A container's own fence: a table in its network namespace that drops everything but loopback, so its peers
# see silence, not resets; CRIU saves each side's TCP queues and the kernel retransmits after the restore.
# Priority -300 puts it before any filter or NAT chain the engine installed. It dies with the namespace.
# An established connection's segment (ACK without SYN) is answered with ICMP host-unreachable instead of
# silence: a soft error, which leaves the connection as it is, but Linux reverts one step of the peer's
# retransmission backoff for each (RFC 6069, tcp_ld_RTO_revert), so the peer keeps retransmitting about every
# 200 ms, not 0.2, 0.4, 0.8, 1.6, 3.2 s apart, and is served soon after the pause. A SYN stays dropped (an ICMP
# error fails a connect). The errors carry CRIU's own mark (SOCCR_MARK): while it dumps the container's TCP
# connections its network lock drops every other packet they cause (seen on the lab: only the errors sent before
# the dump arrived). And the namespace's per-client limit on ICMP errors (one a second after a burst of six) is
# lifted while the fence stands (Host.unlimit_icmp).
ESTABLISHED_REJECT = "tcp flags & (syn | ack) == ack reject with icmpx type host-unreachable"
CRIU_MARK = "0xc114"
FENCE_TABLE = "stacklift_fence"
FENCE_RULES = """table inet {t} {{
  chain input {{ type filter hook input priority -300; policy drop; iifname "lo" accept; {r}; }}
  chain output {{ type filter hook output priority -300; policy drop; oifname "lo" accept;
                 icmp type destination-unreachable meta mark set {m} accept;
                 icmpv6 type destination-unreachable meta mark set {m} accept; }}
}}
""".format(t=FENCE_TABLE, r=ESTABLISHED_REJECT, m=CRIU_MARK)
ICMP_RATELIMIT = "/proc/sys/net/ipv4/icmp_ratelimit"
IFNAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,15}$")  # an interface name nft takes quoted

# How each character outside [A-Za-z0-9] is written in a table's name: a prefix-free code, so that two
# stack names never share a table (shop-a, shop_a and shop.a once all became stacklift_shop_a).
_ESCAPES = {"_": "__", "-": "_h", ".": "_d"}


def host_fence_table(stack):
    """The name of STACK's host fence table: one stack's, never another's (nft allows 255 characters)."""
    return "stacklift_" + re.sub(r"[^A-Za-z0-9]", lambda m: _ESCAPES.get(m.group(0), "_u%06x" % ord(m.group(0))),
                                 stack)


# The host fence is a table in two families: "inet" (routed traffic: clients elsewhere) and "bridge"
# (traffic between two containers on one bridge, which passes the inet hooks only with br_netfilter).
# Fenced addresses (v4, v6) are cut off from everything, except that two containers whose restores are
# done (r4, r6: their sockets are back) reach each other: an app's restored connection to its database
# works while its probes run, and a packet to a container whose sockets are not back yet (which its new
# network namespace would answer with a reset) is dropped, to be retransmitted once they are.
# Routed clients' established connections get host-unreachable instead (ESTABLISHED_REJECT), before routing:
# on a source, a checkpointed container's address has no route once its bridge is gone. The answers come from the
# ingress of the host's interfaces with an address (a "netdev" table): an error sent there is built and sent by
# nftables itself, without the host's per-client limit on ICMP errors (six, then one a second), which let the
# client's backoff double again between the checkpoint and the traffic switch (seen on the lab: 0.4, then 0.8 s).
# The same answers before routing (inet prerouting, limited) cover an interface that ingress chain does not list.
HOST_FENCE_FAMILIES = ("inet", "bridge", "netdev")
FORWARD_FAMILIES = ("inet", "bridge")
_SETS = "  set v4 {{ type ipv4_addr; }}\n  set v6 {{ type ipv6_addr; }}\n" \
        "  set r4 {{ type ipv4_addr; }}\n  set r6 {{ type ipv6_addr; }}\n"
# Idempotent: raised again (a rerun, a rollback), the chains are flushed and their rules written once; the sets
# keep the addresses already in them.
HOST_FENCE_RULES = (
    "table {f} {t} {{\n" + _SETS +
    "  chain forward {{ type filter hook forward priority -300; policy accept; }}\n"
    "}}\n"
    "flush chain {f} {t} forward\n"
    "add rule {f} {t} forward ip saddr @r4 ip daddr @r4 accept\n"
    "add rule {f} {t} forward ip6 saddr @r6 ip6 daddr @r6 accept\n"
    "add rule {f} {t} forward ip saddr @v4 drop\n"
    "add rule {f} {t} forward ip daddr @v4 drop\n"
    "add rule {f} {t} forward ip6 saddr @v6 drop\n"
    "add rule {f} {t} forward ip6 daddr @v6 drop\n")
_ANSWERS = (
    "flush chain {f} {t} {c}\n"
    "add rule {f} {t} {c} ip saddr @r4 ip daddr @r4 accept\n"
    "add rule {f} {t} {c} ip6 saddr @r6 ip6 daddr @r6 accept\n"
    "add rule {f} {t} {c} ip daddr @v4 {r}\n"
    "add rule {f} {t} {c} ip6 daddr @v6 {r}\n")
HOST_FENCE_ANSWERS = (
    "table inet {t} {{\n"
    "  chain prerouting {{ type filter hook prerouting priority -300; policy accept; }}\n"
    "}}\n" + _ANSWERS.format(f="inet", t="{t}", c="prerouting", r="{r}"))
HOST_FENCE_INGRESS = (
    "table netdev {t} {{\n"
    "  chain ingress {{ type filter hook ingress devices = {{ {d} }} priority -300; policy accept; }}\n"
    "}}\n" + _ANSWERS.format(f="netdev", t="{t}", c="ingress", r="{r}"))


def host_fence_script(table, devices=()):
    """The host fence's nft script; its answers at the ingress of DEVICES (Host.uplinks) too, when there are any."""
    script = "".join(HOST_FENCE_RULES.format(f=f, t=table) for f in FORWARD_FAMILIES) + \
        ("table netdev {t} {{\n" + _SETS + "}}\n").format(t=table) + \
        HOST_FENCE_ANSWERS.format(t=table, r=ESTABLISHED_REJECT)
    if devices:
        script += HOST_FENCE_INGRESS.format(t=table, r=ESTABLISHED_REJECT, d=", ".join('"%s"' % d for d in devices))
    return script


def lift_answers_command(stack):
    """The shell command that lifts STACK's host fence on a source once the stack is committed: its answers for the
    addresses of the containers it checkpointed (SourceWindow._answer_for) end when the traffic has gone to the
    target (the controller's commit note comes after the switch). None there: nothing to do."""
    return "; ".join("nft delete table %s %s 2>/dev/null" % (f, host_fence_table(stack))
                     for f in HOST_FENCE_FAMILIES) + "; true"


def _elements_script(table, addresses, restored=False):
    """Add ADDRESSES to the fenced sets (or, RESTORED, to the sets of those whose restores are done)."""
    lines = []
    for ip in addresses:
        kind = ("r" if restored else "v") + ("6" if ipaddress.ip_address(ip).version == 6 else "4")
        lines += ["add element %s %s %s { %s }\n" % (f, table, kind, ip) for f in HOST_FENCE_FAMILIES]
    return "".join(lines)


class Host:
    """What a window needs of its host: the engine, a command runner, the binaries and /proc."""

    def __init__(self, engine, run, nsenter="nsenter", nft="nft", conntrack="conntrack", ip="ip"):
        self.engine = engine
        self.run = run  # run(argv, data=None) -> (rc, out, err)
        self.nsenter = nsenter
        self.nft = nft
        self.ip = ip
        self._uplinks = None
        self.conntrack = _which(conntrack)
        self.proc = "/proc"
        self.pre_copy_dir = precopy.PRECOPY_DIR

    def memory_bytes(self, pid):
        """The resident memory of the host's process PID (0 when it cannot be read)."""
        return memory_bytes(pid, self.proc) if pid else 0

    def container_memory_bytes(self, pid):
        """The resident memory of every process in the container of the host's process PID (0 when unread)."""
        return container_memory_bytes(pid, self.proc) if pid else 0

    def shared_writable_files(self, pid):
        """The files a process of the host's process PID's container maps shared and writable (host.py)."""
        return shared_writable_files(pid, self.proc) if pid else set()

    def scratch_for(self, need):
        """A directory in memory with room for NEED bytes, or "" (see memory_scratch)."""
        return memory_scratch(need, proc=self.proc)

    def pre_copy_problem(self):
        """Why this host cannot pre-dump (precopy.py), or None; asked once."""
        if not hasattr(self, "_pre_copy_problem"):
            self._pre_copy_problem = ("the host's runc is not found" if lazy.real_runc() is None
                                      else precopy.dirty_tracking_problem(self.run))
        return self._pre_copy_problem

    def pre_copy(self, container_id):
        """Pre-dump CONTAINER_ID's memory in rounds while it runs (precopy.pre_copy)."""
        return precopy.pre_copy(self.run, lazy.real_runc(), container_id, root=self.pre_copy_dir)

    def drop_pre_copy(self, container_id):
        """CONTAINER_ID's pre-dumps gone (its checkpoint was restored in place, or removed)."""
        if lazy.is_container_id(container_id):
            remove_tree(os.path.join(self.pre_copy_dir, container_id))

    def process_start(self, pid):
        """When the host's process PID started, or None (no such process)."""
        return process_start(pid, self.proc) if pid else None

    def _nft(self, args, data=None, netns_pid=None, what="nft"):
        argv = self._in_netns(netns_pid, [self.nft] + list(args)) if netns_pid else [self.nft] + list(args)
        rc, out, err = self.run(argv, data=data) if data is not None else self.run(argv)
        if rc != 0:
            said = (err or out).strip() or ("timed out" if rc == 124 else "exit status %d" % rc)
            raise EngineError("%s failed: %s" % (what, said), cmd=argv, rc=rc, stdout=out, stderr=err)
        return out

    # A container's own fence (the source side): everything but loopback dropped.
    def container_fenced(self, pid):
        argv = self._in_netns(pid, [self.nft, "list", "table", "inet", FENCE_TABLE])
        return self.run(argv)[0] == 0

    def fence_container(self, pid, name):
        self._nft(["-f", "-"], data=FENCE_RULES, netns_pid=pid, what="fencing %s" % name)

    def unlimit_icmp(self, pid):
        """No limit on the ICMP errors the network namespace of the host's process PID sends a client while its fence
        stands (FENCE_RULES); returns the limit it had, for unfence_container ("" when it could not be read)."""
        rc, out, _err = self.run(self._in_netns(pid, ["cat", ICMP_RATELIMIT]))
        was = out.strip() if rc == 0 and out.strip().isdigit() else ""
        if was:
            self._set_icmp_ratelimit(pid, "0")
        return was

    def unfence_container(self, pid, name, icmp_ratelimit=""):
        """The fence lifted, and the ICMP limit unlimit_icmp found (ICMP_RATELIMIT) put back."""
        if self.container_fenced(pid):
            self._nft(["delete", "table", "inet", FENCE_TABLE], netns_pid=pid, what="lifting the fence of %s" % name)
        if str(icmp_ratelimit).isdigit():
            self._set_icmp_ratelimit(pid, icmp_ratelimit)

    def _set_icmp_ratelimit(self, pid, value):
        self.run(self._in_netns(pid, ["tee", ICMP_RATELIMIT]), data="%s\n" % value)

    def _in_netns(self, pid, argv):
        """ARGV run in the network namespace of the host's process PID."""
        return [self.nsenter, "-t", str(pid), "-n"] + argv

    # The target host's fence (HOST_FENCE_RULES): its restored copies' addresses cut off from everything
    # but each other, until the commit.
    def raise_host_fence(self, table):
        self._nft(["-f", "-"], data=host_fence_script(table, self.uplinks()), what="raising the target's fence")

    def uplinks(self):
        """The host's interfaces with a global address, where routed clients come in (asked once; [] when `ip`
        cannot say: the answers before routing stay)."""
        if self._uplinks is None:
            rc, out, _err = self.run([self.ip, "-j", "address", "show", "scope", "global"])
            try:
                links = json.loads(out) if rc == 0 else []
            except ValueError:
                links = []
            self._uplinks = sorted(set(
                link["ifname"] for link in links if isinstance(link, dict) and IFNAME.match(link.get("ifname") or "")
                and link["ifname"] != "lo" and any(a.get("local") for a in link.get("addr_info") or [] if isinstance(a, dict))))
        return self._uplinks

    def fence_addresses(self, table, addresses):
        """Fence ADDRESSES before a restore here, and forget this host's connection tracking of them: an
        entry left from when the stack ran here before holds the old sequence numbers, and the restored
        connections' packets would be dropped as invalid (found moving stacks back after a drain)."""
        if addresses:
            self._nft(["-f", "-"], data=_elements_script(table, addresses), what="fencing %s" % ", ".join(addresses))
        for ip in addresses:
            for way in ("-s", "-d") if self.conntrack else ():  # rc 1: none; no conntrack: the preflight warns
                self.run([self.conntrack, "-D", way, ip])

    def addresses_restored(self, table, addresses):
        """ADDRESSES' container is restored (its sockets are back): fenced still, it now reaches the
        stack's other restored containers here."""
        if addresses:
            self._nft(["-f", "-"], data=_elements_script(table, addresses, restored=True),
                      what="opening the fence between %s and the stack's restored containers" % ", ".join(addresses))

    def host_fence_up(self, table):
        return self.run([self.nft, "list", "table", "inet", table])[0] == 0

    def lift_host_fence(self, table):
        """Both families' tables gone (a bridge table left alone from an older run goes too)."""
        for family in HOST_FENCE_FAMILIES:
            if self.run([self.nft, "list", "table", family, table])[0] == 0:
                self._nft(["delete", "table", family, table], what="lifting the target's fence")
