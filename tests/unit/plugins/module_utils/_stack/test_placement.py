"""Placement of a fleet's stacks by capacity: deterministic, every refusal explained."""

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._stack import placement

GB = 10 ** 9


def host(name, memory_gb, disk_gb=100, cpus=8, **kw):
    return dict(name=name, free_memory_bytes=memory_gb * GB, free_archive_bytes=disk_gb * GB, cpus=cpus, **kw)


def stack(name, memory_gb, **kw):
    return dict(name=name, source="node1", memory_bytes=int(memory_gb * GB), **kw)


def test_largest_first_each_to_the_host_left_with_the_most_memory():
    plan = placement.place([stack("shop", 2), stack("cache", 1), stack("blog", 3)],
                           [host("node2", 4), host("node3", 5)])
    # blog (3) -> node3 (2 left, node2 would leave 1); shop (2) -> node2 (2 left); cache (1): a tie, by name
    assert plan["placements"] == [{"stack": "blog", "source": "node1", "target": "node3"},
                                  {"stack": "cache", "source": "node1", "target": "node2"},
                                  {"stack": "shop", "source": "node1", "target": "node2"}]
    assert plan["unplaced"] == []
    assert plan["hosts"]["node2"]["free_memory_bytes"] == 1 * GB and plan["hosts"]["node3"]["stacks"] == ["blog"]


def test_the_same_inputs_give_the_same_plan_whatever_their_order():
    stacks = [stack("a", 1), stack("b", 1), stack("c", 1), stack("d", 2)]
    hosts = [host("node2", 3), host("node3", 3)]
    first = placement.place(stacks, hosts)
    assert placement.place(list(reversed(stacks)), list(reversed(hosts))) == first


def test_a_stack_that_fits_nowhere_is_reported_with_each_hosts_reason_and_the_others_move():
    plan = placement.place([stack("huge", 64, cpus=16, requires=["ssd"]), stack("small", 1)],
                           [host("node2", 8, cpus=4), host("node3", 8, labels=["ssd"], disk_gb=10)])
    assert [p["stack"] for p in plan["placements"]] == ["small"]
    assert plan["unplaced"] == [{"stack": "huge", "source": "node1", "why": [
        "node2: 8000 MB of free memory, the stack needs 64000 MB; 4 CPUs, the stack needs 16; lacks the label ssd",
        "node3: 8000 MB of free memory, the stack needs 64000 MB; 10000 MB free for archives, the stack needs "
        "96000 MB; 8 CPUs, the stack needs 16"]}]


def test_two_replicas_never_on_one_host_and_a_limit_of_stacks():
    stacks = [stack("shop-a", 1, spread=["shop"]), stack("shop-b", 1, spread=["shop"]),
              stack("shop-c", 1, spread=["shop"])]
    hosts = [host("node2", 8), host("node3", 8, stacks=[{"name": "old", "spread": []}], max_stacks=2)]
    plan = placement.place(stacks, hosts)
    targets = {p["stack"]: p["target"] for p in plan["placements"]}
    assert len(set(targets.values())) == len(targets) == 2
    assert plan["unplaced"][0]["stack"] == "shop-c"
    assert any("already runs shop-" in w and "of the spread group shop" in w for w in plan["unplaced"][0]["why"])


def test_a_pinned_stack_is_checked_not_moved_elsewhere_and_never_to_its_source():
    plan = placement.place([stack("shop", 2)], [host("node2", 8), host("node3", 1)], pinned={"shop": "node3"})
    assert plan["placements"] == [] and "node3: 1000 MB of free memory" in plan["unplaced"][0]["why"][0]
    plan = placement.place([stack("shop", 2)], [host("node1", 8)])
    assert plan["unplaced"][0]["why"] == ["node1: it is the stack's source"]


def test_bad_input_is_refused_whole():
    with pytest.raises(placement.PlacementError) as e:
        placement.place([stack("a", 1), stack("a", 1), {"name": "b"}], [host("node2", 1)], pinned={"a": "node9"})
    assert str(e.value) == ("stack 'a' is listed twice; stack 'b' has no memory_bytes; "
                            "stack 'a' is pinned to 'node9', which is not a target host")
