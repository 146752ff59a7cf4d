"""The quiesce checks: open transactions, established connections, a drained application."""


import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._services import quiesce


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


@pytest.mark.parametrize("rows,done", [([["0"]], True), ([["2"]], False)])
def test_postgres_idle_check(monkeypatch, rows, done):
    monkeypatch.setattr(quiesce, "postgres_query", lambda *a, **k: rows)
    assert quiesce.postgres_idle_check("10.0.0.2")()[0] is done
