"""The fleet's logic: what a stack needs from what its containers take, and the fleet report."""

import json
import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._stack import fleet
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.placement import place

MB = 10 ** 6


def test_a_stacks_demand_adds_its_containers_and_names_those_not_running():
    stack = {"name": "shop", "source": "node1", "spread": ["shops"],
             "services": [{"name": "db", "container": "shop-db"}, {"name": "cache"}]}
    usage = {"shop-db": {"memory_bytes": 50 * MB, "volume_bytes": 5 * MB}}
    d = fleet.stack_demand(stack, usage)
    assert d["memory_bytes"] == 50 * MB and d["missing"] == ["cache"] and d["spread"] == ["shops"]
    assert d["archive_bytes"] == 55 * MB + 2 * fleet.ARCHIVE_OVERHEAD


def test_demands_place_two_shops_apart_and_report_the_one_that_fits_nowhere():
    usage = {"a": {"memory_bytes": 100 * MB}, "b": {"memory_bytes": 100 * MB}, "big": {"memory_bytes": 5000 * MB}}
    stacks = [fleet.stack_demand({"name": n, "source": "node1", "spread": ["shops"] if n != "big" else [],
                                  "services": [{"name": n}]}, usage) for n in ("a", "b", "big")]
    hosts = [{"name": h, "free_memory_bytes": 1000 * MB, "free_archive_bytes": 10 ** 12, "cpus": 2}
             for h in ("node2", "node3")]
    plan = place(stacks, hosts)
    assert sorted(p["target"] for p in plan["placements"]) == ["node2", "node3"]
    assert plan["unplaced"][0]["stack"] == "big" and "free memory" in plan["unplaced"][0]["why"][0]


def test_the_fleet_report_reads_each_stacks_report(tmp_path):
    rep = tmp_path / "shop-1.json"
    rep.write_text(json.dumps({"outcome": "migrated", "downtime_s": 3.2, "services": {
        "db": {"phases": {"quiesce": {"start": 5.0, "end": 6.0}, "fence": {"start": 10.0, "end": 10.1},
                          "transfer": {"start": 10.5, "end": 11.4}, "commit": {"start": 13.0, "end": 13.2}}}},
        "window_slot": {"slot": 0, "waited_s": 2.5, "given_back": 13.25, "given_back_on": "targets"}}))
    rows = [fleet.stack_entry("shop", "node1", "node2", "failed", report_path=str(rep)),
            fleet.stack_entry("big", "node1", None, "unplaced", error="node2: 900 MB of free memory"),
            fleet.stack_entry("sessions", "node1", "node3", "rolled_back", error="cache: not ready")]
    assert rows[0]["outcome"] == "migrated" and rows[0]["window"] == [10.0, 13.2]
    assert rows[0]["freeze"] == [10.0, 11.4]  # frozen on its source: the first fence to the last archive in
    assert rows[0]["window_slot"]["waited_s"] == 2.5 and rows[1].get("window_slot") is None
    report = fleet.build(rows, 0.0, 20.0)
    assert not report["ok"] and report["counts"]["migrated"] == 1 and report["counts"]["unplaced"] == 1
    assert report["total_s"] == 20.0 and report["max_downtime_s"] == 3.2
    text = fleet.summary(report)
    assert "3 stacks, 1 migrated, 1 rolled back, 1 unplaced in 20.0 s" in text and "900 MB" in text
    assert "window wait" in text.splitlines()[2]
    assert [line.split()[4:] for line in text.splitlines() if line.startswith("shop ")] == [["3.200", "s", "2.5", "s"]]
    path = fleet.write(report, str(tmp_path / "reports"), stamp="x")
    assert path.endswith("fleet-x.json") and os.path.exists(path[:-5] + ".svg")
    svg = open(path[:-5] + ".svg").read()
    assert svg.count("<rect") == 2 and "shop: fenced to the last archive sent" in svg


def measured_hosts():
    return {
        "node1": {"free_memory_bytes": 500 * MB, "free_archive_bytes": 10 ** 12, "cpus": 2, "stacks_here": ["a"],
                  "containers": {"a": {"memory_bytes": 100 * MB, "volume_bytes": 0}}},
        "node2": {"free_memory_bytes": 900 * MB, "free_archive_bytes": 10 ** 12, "cpus": 2, "stacks_here": ["b"],
                  "containers": {"b": {"memory_bytes": 200 * MB, "volume_bytes": 0}}},
        "node3": {"free_memory_bytes": 800 * MB, "free_archive_bytes": 10 ** 12, "cpus": 2, "stacks_here": []},
    }


def test_a_stack_moves_from_where_it_runs_not_where_it_was_declared():
    stacks = [{"name": "a", "source": "node1", "services": [{"name": "a"}]},
              {"name": "b", "source": "node1", "services": [{"name": "b"}]},   # moved to node2 by a drain
              {"name": "c", "source": "node1", "services": [{"name": "c"}]}]   # runs nowhere
    assert fleet.locate(stacks, measured_hosts()) == {"a": "node1", "b": "node2", "c": None}


def test_a_drain_moves_only_the_stacks_running_on_its_host_and_counts_those_on_the_targets():
    stacks = [{"name": "a", "source": "node1", "services": [{"name": "a"}]},
              {"name": "b", "source": "node1", "services": [{"name": "b"}]},
              {"name": "c", "source": "node1", "services": [{"name": "c"}]}]
    extras = [{"spread": ["g"]}, {"spread": ["g"]}, {}]
    demands, hosts, pinned, sources, excluded, nowhere = fleet.plan_inputs(
        stacks, extras, measured_hosts(), ["node2", "node3"], max_stacks={"node3": 0}, from_host="node1")
    assert [d["name"] for d in demands] == ["a"] and excluded == ["b"] and nowhere[0]["stack"] == "c"
    node2 = [h for h in hosts if h["name"] == "node2"][0]
    assert node2["stacks"] == [{"name": "b", "spread": ["g"]}]  # b runs there: a of the same group may not
    plan = place(demands, hosts, pinned=pinned)
    why = plan["unplaced"][0]["why"]
    assert any("spread group g" in w for w in why) and any("its limit" in w for w in why), why


def test_moving_back_after_maintenance_is_the_same_plan_with_the_old_host_as_target():
    stacks = [{"name": "b", "source": "node1", "services": [{"name": "b"}]}]
    demands, hosts, pinned, sources, excluded, nowhere = fleet.plan_inputs(stacks, [], measured_hosts(), ["node1"])
    assert sources == {"b": "node2"} and place(demands, hosts)["placements"] == [
        {"stack": "b", "source": "node2", "target": "node1"}]


def test_a_memory_budget_bounds_a_target_counting_the_stacks_it_runs_already():
    stacks = [{"name": "a", "source": "node1", "services": [{"name": "a"}]},
              {"name": "b", "source": "node1", "services": [{"name": "b"}]}]
    # node2 runs b (200 MB): a budget of 250 MB leaves 50 MB there; node3's 90 MB budget, 90 MB.
    demands, hosts, pinned, sources, excluded, nowhere = fleet.plan_inputs(
        stacks, [], measured_hosts(), ["node2", "node3"], from_host="node1",
        memory_budget={"node2": 250 * MB, "node3": 90 * MB})
    free = {h["name"]: h["free_memory_bytes"] for h in hosts}
    assert free == {"node2": 50 * MB, "node3": 90 * MB}
    plan = place(demands, hosts, pinned=pinned)
    assert plan["placements"] == [] and plan["unplaced"][0]["stack"] == "a"
    assert any("node3: 90 MB of free memory, the stack needs 100 MB" in w for w in plan["unplaced"][0]["why"])
    # A budget above the free memory leaves the free memory the bound.
    hosts = fleet.plan_inputs(stacks, [], measured_hosts(), ["node3"], from_host="node1",
                              memory_budget={"node3": 10 ** 15})[1]
    assert hosts[0]["free_memory_bytes"] == 800 * MB


def test_a_jmespath_query_selects_the_stacks_by_labels_names_or_host():
    stacks = [{"name": "a", "services": [{"name": "a"}]}, {"name": "b", "services": [{"name": "b"}]},
              {"name": "c", "labels": {"team": "web"}, "services": [{"name": "c"}]}]
    extras = [{"labels": {"team": "web"}}, {"labels": {"team": "ops"}}, {}]
    sources = fleet.locate(stacks, measured_hosts())
    assert fleet.select(stacks, extras, "[?labels.team=='web']", sources) == ["a", "c"]
    assert fleet.select(stacks, extras, "[?name=='b' || name=='a'].name", sources) == ["a", "b"]
    assert fleet.select(stacks, extras, "[?runs_on=='node2']", sources) == ["b"]
    assert fleet.select(stacks, extras, "[?name=='nothing']", sources) == []
    with pytest.raises(fleet.SelectError, match="no JMESPath expression"):
        fleet.select(stacks, extras, "[?name==", sources)
    with pytest.raises(fleet.SelectError, match="neither a stack nor a stack's name"):
        fleet.select(stacks, extras, "[].services", sources)
    # The stacks left out are excluded, even one that runs nowhere; the others are planned.
    demands, hosts, pinned, srcs, excluded, nowhere = fleet.plan_inputs(
        stacks, extras, measured_hosts(), ["node3"], query="[?name=='a']")
    assert [d["name"] for d in demands] == ["a"] and excluded == ["b", "c"] and nowhere == []


def test_the_slices_of_a_drain_merge_into_one_report_from_the_first_start_to_the_last_end():
    row = {"outcome": "migrated", "source": "node1", "target": "node2", "downtime_s": 1.5}
    parts = [{"started": 100.0, "finished": 130.0, "stacks": [dict(row, stack="a"), dict(row, stack="c")]},
             {"started": 101.0, "finished": 140.5, "stacks": [dict(row, stack="b", outcome="rolled_back")]}]
    report = fleet.merge(parts)
    assert [s["stack"] for s in report["stacks"]] == ["a", "b", "c"]
    assert report["total_s"] == 40.5 and report["counts"]["migrated"] == 2 and report["counts"]["rolled_back"] == 1
    assert not report["ok"]


def test_a_stack_in_two_slices_fails_the_merge_naming_every_such_stack():
    part = {"started": 1.0, "finished": 2.0, "stacks": [{"stack": "a", "outcome": "migrated"},
                                                        {"stack": "b", "outcome": "migrated"}]}
    with pytest.raises(fleet.StackliftError) as e:
        fleet.merge([part, part, {"started": 1.0, "finished": 3.0, "stacks": [{"stack": "a", "outcome": "skipped"}]}])
    assert str(e.value) == "a stack is in more than one part of the fleet run: a (parts 1, 2, 3); b (parts 1, 2)"
    with pytest.raises(fleet.StackliftError, match="no part of a fleet run to merge"):
        fleet.merge([])
