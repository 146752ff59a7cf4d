"""The migration report built from module results, and the quiesce checks."""

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils import quiesce, report, stack

PLAN = stack.plan({"name": "shop", "source": "node1", "target": "node2", "services": [
    {"name": "db", "container": "shop-db"}, {"name": "app", "container": "shop-app", "depends_on": ["db"]}]})


def item(name):
    return PLAN["by_name"][name]


PHASES = {
    "quiesce": [{"item": item("app"), "started_at": 99.0, "finished_at": 99.5}],
    "fence": [{"item": "node1", "started_at": 100.0,
               "containers": [{"name": "shop-db", "at": 100.01}, {"name": "shop-app", "at": 100.02}]}],
    "checkpoint": [
        {"item": item("db"), "checkpoints": [
            {"name": "shop-db", "started_at": 100.1, "finished_at": 101.0, "size": 5000, "timings": {"frozen_time": 800}}]},
        {"item": item("app"), "checkpoints": [
            {"name": "shop-app", "started_at": 101.0, "finished_at": 101.5, "size": 7000}]}],
    "transfer": [{"item": item("db"), "started_at": 102.0, "finished_at": 102.2, "bytes": 5000},
                 {"item": item("app"), "started_at": 104.0, "finished_at": 104.1, "bytes": 7000}],
    "restore": [{"item": item("db"), "started_at": 102.3, "finished_at": 103.0},
                {"item": item("app"), "started_at": 104.2, "finished_at": 105.0}],
    "ready": [{"item": item("db"), "started_at": 103.0, "finished_at": 103.4},
              {"item": item("app"), "started_at": 105.0, "finished_at": 106.0},
              {"item": item("app"), "skipped": True}],
}


def test_report_phases_and_downtime():
    r = report.build(PLAN, PHASES, "node1", "node2", "migrated")
    assert r["downtime_s"] == 6.0   # first fence 100.0 -> last ready 106.0
    db = r["services"]["db"]
    assert db["archive_bytes"] == 5000 and db["phases"]["checkpoint"]["frozen_us"] == 800
    assert db["phases"]["fence"] == {"start": 100.0, "end": 100.01, "seconds": 0.01}
    assert r["services"]["app"]["phases"]["transfer"]["bytes"] == 7000
    assert r["started"] == 99.0 and r["finished"] == 106.0
    text = report.summary(r)
    assert "downtime (first fence to last service ready): 6.000 s" in text
    svg = report.timeline_svg(r)
    assert svg.startswith("<svg") and svg.count("<rect") >= 10 and "downtime 6.00 s" in svg


def test_a_rolled_back_migration_has_no_downtime_figure():
    r = report.build(PLAN, {"fence": PHASES["fence"]}, "node1", "node2", "rolled_back", error="tier 1 not ready")
    assert r["downtime_s"] is None and r["error"] == "tier 1 not ready"
    assert "error: tier 1 not ready" in report.summary(r)
    assert report.timeline_svg(r).startswith("<svg")


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 040A590A:1F90 6400E70A:D144 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 040A590A:1F90 6400E70A:D145 06 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 040A590A:C1D2 020A590A:1538 01 00000000:00000000 00:00000000 00000000     0        0 4 1
"""


def test_established_connections_count_only_clients_of_the_port():
    # one listening socket, one established client, one in TIME_WAIT, one outgoing connection to 5432
    assert quiesce.established_connections([TCP], 8080) == 1
    assert quiesce.established_connections([TCP, TCP], 8080) == 2
    assert quiesce.established_connections([TCP], 5432) == 0


def test_connections_zero_check():
    done, detail = quiesce.connections_zero_check(lambda: [TCP], 8080)()
    assert not done and detail == "1 client connection(s) to port 8080"
    assert quiesce.connections_zero_check(lambda: [TCP], 9999)()[0]


def test_fence_drops_everything_but_loopback():
    rules = quiesce.FENCE_RULES
    assert "table inet stacklift_fence" in rules and rules.count("policy drop") == 2
    assert 'iifname "lo" accept' in rules and 'oifname "lo" accept' in rules


@pytest.mark.parametrize("rows,done", [([["0"]], True), ([["2"]], False)])
def test_postgres_idle_check(monkeypatch, rows, done):
    monkeypatch.setattr(quiesce, "postgres_query", lambda *a, **k: rows)
    assert quiesce.postgres_idle_check("10.0.0.2")()[0] is done
