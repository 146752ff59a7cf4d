"""The migration report built from the window's results: phases, downtime on the source's clock, the timeline."""

import copy


from ansible_collections.stacklift.migrate.plugins.module_utils._stack import report
from ansible_collections.stacklift.migrate.plugins.module_utils._stack import description as stack


PLAN = stack.plan({"name": "shop", "source": "node1", "target": "node2", "services": [
    {"name": "db", "container": "shop-db"}, {"name": "app", "container": "shop-app", "depends_on": ["db"]}]})


def item(name):
    return PLAN["by_name"][name]


def rec(step, service, t, started=None, **extra):
    out = dict(step=step, service=service, t=t, **extra)
    if started is not None:
        out["started"] = started
    return out


# What window_source, window_target and a rollback return: the hosts' records.
SOURCE = {"item": "node1", "events": [
    rec("fenced", "db", 100.0), rec("fenced", "app", 100.01),
    rec("checkpointed", "db", 101.0, started=100.1, size=5000), rec("checkpointed", "app", 101.5, started=100.1, size=7000),
    rec("sent", "db", 101.2, started=101.0, bytes=5000), rec("sent", "app", 101.7, started=101.5, bytes=7000)]}


TARGET = {"item": "node2", "events": [
    rec("restored", "db", 102.0, started=101.3), rec("ready", "db", 102.2, started=102.0),
    rec("restored", "app", 103.0, started=102.3), rec("ready", "app", 103.4, started=103.0)]}


COMMIT = {"item": "node2", "events": [rec("committed", "db", 104.0), rec("committed", "app", 104.0)]}


PHASES = {"quiesce": [{"item": item("app"), "started_at": 99.0, "finished_at": 99.5}, {"item": item("db"), "skipped": True}],
          "window": [SOURCE, TARGET, COMMIT]}


def test_report_phases_and_downtime_from_the_hosts_records():
    r = report.build(PLAN, PHASES, "node1", "node2", "migrated")
    assert r["downtime_s"] == 4.0   # first fence 100.0 -> the commit 104.0
    db = r["services"]["db"]
    assert db["archive_bytes"] == 5000
    assert db["phases"]["checkpoint"] == {"start": 100.1, "end": 101.0, "seconds": 0.9, "archive_bytes": 5000,
                                          "frozen_at": None}
    assert r["services"]["app"]["phases"]["transfer"]["bytes"] == 7000
    assert r["services"]["app"]["phases"]["quiesce"]["seconds"] == 0.5
    assert r["started"] == 99.0 and r["finished"] == 104.0
    text = report.summary(r)
    assert "downtime (first fence to the commit): 4.000 s" in text
    svg = report.timeline_svg(r)
    assert svg.startswith("<svg") and svg.count("<rect") >= 12 and "downtime 4.00 s" in svg


def test_a_fleets_window_slot_says_how_long_the_stack_waited_and_on_whose_word_it_gave_it_back():
    assert report.build(PLAN, PHASES, "node1", "node2", "migrated")["window_slot"] is None  # no slot taken
    source = dict(SOURCE, side="source", events=[{"step": "window", "t": 99.9, "slot": 0, "waited_s": 4.2}]
                  + SOURCE["events"] + [{"step": "window_given_back", "t": 104.05, "note": "commit",
                                         "seen_on": "targets"}])
    r = report.build(PLAN, dict(PHASES, window=[source, TARGET, COMMIT]), "node1", "node2", "migrated")
    assert r["window_slot"] == {"slot": 0, "waited_s": 4.2, "given_back": 104.05, "given_back_on": "targets"}
    source["events"][-1] = {"step": "window_given_back", "t": 104.6, "note": "commit"}  # the controller's note
    r = report.build(PLAN, dict(PHASES, window=[source, TARGET, COMMIT]), "node1", "node2", "migrated")
    assert r["window_slot"]["given_back_on"] == "commit note"


def test_a_rolled_back_migration_reports_its_rollback_and_the_pause_until_the_source_serves():
    rollback = [{"item": "node2", "events": [rec("removed", "db", 105.0), rec("removed", "app", 105.1)]},
                {"item": "node1", "events": [rec("rolled_back", "db", 105.6, started=105.2),
                                             rec("unfenced", "app", 105.9)]}]
    r = report.build(PLAN, {"window": [SOURCE, TARGET] + rollback}, "node1", "node2", "rolled_back",
                     error="tier 1 not ready")
    assert r["downtime_s"] == 5.9 and r["error"] == "tier 1 not ready"
    assert r["services"]["db"]["phases"]["rollback"] == {"start": 105.0, "end": 105.6, "seconds": 0.6}
    text = report.summary(r)
    assert "error: tier 1 not ready" in text and "source serving again): 5.900 s" in text


def test_reports_stay_in_their_directory():
    assert report.report_base("/r", "/etc/x", "T") == "/r/_etc_x-T"
    assert report.report_base("/r", "../../x", "T") == "/r/_.._x-T"
    assert report.report_base("/r", "shop", "T") == "/r/shop-T"


def test_the_timeline_escapes_names():
    import xml.dom.minidom
    # stack names are identifiers now; the timeline still escapes what it is given
    plan = stack.plan({"name": "shop", "source": "a", "target": "b", "services": [{"name": "x"}]})
    plan["name"], plan["services"][0]["name"] = "R&D <shop>", "x<y"
    plan["by_name"] = {"x<y": plan["services"][0]}
    r = report.build(plan, {"window": [{"events": [rec("fenced", "x<y", 1.0), rec("committed", "x<y", 2.0)]}]},
                     "a", "b", "migrated")
    xml.dom.minidom.parseString(report.timeline_svg(r))


def test_the_downtime_is_measured_on_the_sources_clock():
    # node2's clock runs 100 s ahead: its records are shifted back by the offset the source measured
    ahead = copy.deepcopy(PHASES)
    ahead["window"][0]["events"][4]["clock_offset"] = 100.0
    ahead["window"][0]["events"][5].update(clock_offset=100.0, clock_error=0.002)
    for result in ahead["window"][1:]:
        result["side"] = "target"
        for r in result["events"]:
            r["t"] += 100.0
            if "started" in r:
                r["started"] += 100.0
    r = report.build(PLAN, ahead, "node1", "node2", "migrated")
    assert r["downtime_s"] == 4.0
    assert r["clock"] == {"reference": "source", "target_offsets_s": {"db": 100.0, "app": 100.0}, "max_error_s": 0.002}
    assert r["services"]["app"]["phases"]["ready"] == {"start": 103.0, "end": 103.4, "seconds": 0.4}


def test_a_pre_copy_is_reported_before_the_fence_and_outside_the_pause():
    phases = copy.deepcopy(PHASES)
    rounds = [{"bytes": 1 << 30, "seconds": 2.5}, {"bytes": 12 << 20, "seconds": 0.2}]
    phases["window"][0]["events"].insert(0, rec("pre_copied", "db", 98.0, started=95.3, rounds=rounds,
                                                stopped="converged: the last round wrote 12582912 bytes", error=None))
    r = report.build(PLAN, phases, "node1", "node2", "migrated")
    assert r["downtime_s"] == 4.0 and r["started"] == 95.3
    assert r["services"]["db"]["phases"]["precopy"] == {
        "start": 95.3, "end": 98.0, "seconds": 2.7, "rounds": rounds,
        "stopped": "converged: the last round wrote 12582912 bytes", "error": None}
    assert "db: pre-copied in 2 round(s), 1086.3 MB, the last 12.6 MB\n" in report.summary(r)
