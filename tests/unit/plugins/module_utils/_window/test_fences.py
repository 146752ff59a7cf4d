"""The window's fences: a container's own, and the host fence a stack's restored containers talk through."""


import json

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner
from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences


def test_fence_drops_everything_but_loopback_and_answers_established_connections_with_host_unreachable():
    """Silence, except an established connection's segment: ICMP host-unreachable (its peer's backoff reverted,
    RFC 6069), never a SYN's (an ICMP error fails a connect); the error leaves marked as CRIU's own packets, which
    its network lock lets through while it dumps the connections."""
    rules = fences.FENCE_RULES
    assert "table inet stacklift_fence" in rules and rules.count("policy drop") == 2
    assert 'iifname "lo" accept' in rules and 'oifname "lo" accept' in rules
    chain_in = rules.split("chain input", 1)[1].split("}", 1)[0]
    chain_out = rules.split("chain output", 1)[1].split("}", 1)[0]
    assert chain_in.strip().endswith("tcp flags & (syn | ack) == ack reject with icmpx type host-unreachable;")
    for icmp in ("icmp", "icmpv6"):
        assert "%s type destination-unreachable meta mark set 0xc114 accept" % icmp in chain_out


def test_a_fenced_namespace_answers_without_a_limit_and_gets_its_limit_back_with_the_fence_lifted():
    runner = FakeRunner({"nsenter": lambda argv: (0, "1000\n", "") if "cat" in argv else (0, "", "")})
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    written = []
    run = host.run
    host.run = lambda argv, data=None: (written.append((argv[-2:], data)) if data else None) or \
        (run(argv, data=data) if data is not None else run(argv))
    assert host.unlimit_icmp(4242) == "1000"
    host.unfence_container(4242, "db", icmp_ratelimit="1000")
    assert written[0] == (["tee", fences.ICMP_RATELIMIT], "0\n") and written[-1] == (["tee", fences.ICMP_RATELIMIT], "1000\n")
    assert ["nsenter", "-t", "4242", "-n", "nft", "delete", "table", "inet", "stacklift_fence"] in runner.calls
    runner.answers["nsenter"] = (1, "", "no such process")
    assert host.unlimit_icmp(4242) == "" and not any("tee" in c for c in runner.calls[-1:])


def test_no_two_stack_names_share_a_host_fence_table():
    names = ["shop", "shop-a", "shop_a", "shop.a", "shop__a", "shop_ha", "shop-h", "a" * 40 + "x", "a" * 40 + "y",
             "shop_-a", "shop-_a", "shop\u00e9"]
    tables = [fences.host_fence_table(n) for n in names]
    assert len(set(tables)) == len(names), tables
    assert tables[0] == "stacklift_shop" and tables[1] == "stacklift_shop_ha"
    assert all(len(t) < 256 for t in tables) and fences.host_fence_table("x" * 63).endswith("x" * 63)


def test_the_host_fence_lets_restored_containers_of_the_stack_reach_each_other_and_is_written_once():
    """Issue 20: an app's restored connection to its database must work while its probe runs; a packet to a
    container whose sockets are not back yet stays dropped (its new namespace would answer with a reset).
    Same-bridge traffic passes the inet hooks only with br_netfilter: the bridge family holds it too."""
    script = fences.host_fence_script("stacklift_shop").splitlines()
    assert not any("ingress" in line for line in script)  # no interface to list: the answers before routing only
    for family in ("inet", "bridge"):
        mine = [line for line in script if " %s stacklift_shop" % family in line or line.startswith("table %s " % family)]
        flush = mine.index("flush chain %s stacklift_shop forward" % family)
        accepts = [i for i, line in enumerate(mine) if line.endswith("accept")]
        drops = [i for i, line in enumerate(mine) if line.endswith("drop")]
        mine = [line for line in mine if " prerouting" not in line]
        accepts = [i for i, line in enumerate(mine) if line.endswith("accept")]
        drops = [i for i, line in enumerate(mine) if line.endswith("drop")]
        assert flush < min(accepts) and max(accepts) < min(drops) and len(accepts) == 2 and len(drops) == 4
        assert mine[accepts[0]].endswith("ip saddr @r4 ip daddr @r4 accept")
    # Routed clients' established connections get host-unreachable before routing (on a source a checkpointed
    # container's address has no route), but restored containers of the stack still reach each other.
    pre = [line for line in script if line.startswith("add rule inet stacklift_shop prerouting")]
    assert pre == ["add rule inet stacklift_shop prerouting ip saddr @r4 ip daddr @r4 accept",
                   "add rule inet stacklift_shop prerouting ip6 saddr @r6 ip6 daddr @r6 accept",
                   "add rule inet stacklift_shop prerouting ip daddr @v4 " + fences.ESTABLISHED_REJECT,
                   "add rule inet stacklift_shop prerouting ip6 daddr @v6 " + fences.ESTABLISHED_REJECT]
    assert "flush chain inet stacklift_shop prerouting" in script and not any("bridge" in line and "reject" in line
                                                                              for line in script)
    # The same answers at the ingress of the host's interfaces, where nftables sends them without the host's limit.
    script = fences.host_fence_script("stacklift_shop", ["eth0", "bond0.7"]).splitlines()
    assert ('  chain ingress { type filter hook ingress devices = { "eth0", "bond0.7" } priority -300; policy accept; }'
            in script)
    ingress = [line for line in script if line.startswith("add rule netdev stacklift_shop ingress")]
    assert ingress == [line.replace("inet stacklift_shop prerouting", "netdev stacklift_shop ingress") for line in pre]
    assert script.index("flush chain netdev stacklift_shop ingress") < script.index(ingress[0])
    for kind in ("v4", "v6", "r4", "r6"):  # the addresses go into each family's sets
        assert sum(line.startswith("  set %s " % kind) for line in script) == 3
    runner = FakeRunner({"nft": (0, "", "")})
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    host.conntrack = None
    scripts = []
    host._nft = lambda args, data=None, **kw: scripts.append(data)
    host.fence_addresses("stacklift_shop", ["10.89.10.2", "fd00::2"])
    host.addresses_restored("stacklift_shop", ["10.89.10.2"])
    assert scripts == ["".join("add element %s stacklift_shop %s\n" % (f, e) for e in ("v4 { 10.89.10.2 }", "v6 { fd00::2 }")
                               for f in ("inet", "bridge", "netdev")),
                       "".join("add element %s stacklift_shop r4 { 10.89.10.2 }\n" % f for f in ("inet", "bridge", "netdev"))]


def test_the_commit_lifts_a_sources_answers_every_family_whether_there_or_not(tmp_path):
    import subprocess
    log = tmp_path / "nft.log"
    nft = tmp_path / "nft"
    nft.write_text("#!/bin/sh\necho \"$*\" >> %s\nexit 1\n" % log)  # not there: nft fails
    nft.chmod(0o755)
    res = subprocess.run(["/bin/sh", "-c", fences.lift_answers_command("shop-a")], env={"PATH": str(tmp_path)},
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0 and res.stderr == ""
    assert log.read_text().splitlines() == ["delete table %s stacklift_shop_ha" % f for f in ("inet", "bridge", "netdev")]


def test_the_host_fence_answers_at_the_ingress_of_the_interfaces_with_an_address():
    """Host.uplinks: the interfaces `ip` lists with a global address (not lo, not one without an address, nor a name
    nft could not take), asked once; raise_host_fence lists them in the ingress chain."""
    links = [{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.231.0.11"}, {}]},
             {"ifname": "docker0", "addr_info": [{"family": "inet", "local": "172.17.0.1"}]},
             {"ifname": "veth1", "addr_info": []}, {"ifname": "lo", "addr_info": [{"local": "::1"}]},
             {"ifname": 'x"y', "addr_info": [{"local": "10.0.0.1"}]}]
    runner = FakeRunner({"ip -j address show scope global": (0, json.dumps(links), "")})
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    scripts = []
    host._nft = lambda args, data=None, **kw: scripts.append(data)
    assert host.uplinks() == ["docker0", "eth0"]
    host.raise_host_fence("stacklift_shop")
    host.raise_host_fence("stacklift_shop")
    assert len(runner.commands("ip")) == 1
    assert scripts == [fences.host_fence_script("stacklift_shop", ["docker0", "eth0"])] * 2
    # `ip` missing or saying nothing usable: no ingress chain, the answers before routing stay
    for answer in ((127, "", "ip: not found"), (0, "not json", "")):
        runner = FakeRunner({"ip": answer})
        assert fences.Host(PodmanEngine(runner, binary="podman"), runner).uplinks() == []
