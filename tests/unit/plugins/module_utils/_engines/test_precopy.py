"""Pre-copy's rounds: when they stop, the pre-dumps' commands (each on the one before), and what a failed round
leaves; only runc's and CRIU's commands faked (the fake runc writes a pre-dump's pagemap as CRIU does)."""

import os

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages, precopy
from ansible_collections.stacklift.migrate.tests.unit.fakes import PRESENT, write_dump

MIB = 1 << 20
CID = "ab" * 32


def test_rounds_stop_once_a_round_wrote_little():
    rounds = precopy.Rounds(limit=5, enough=16 * MIB)
    assert rounds.add(1024 * MIB) is None and rounds.add(200 * MIB) is None
    assert rounds.add(16 * MIB).startswith("converged: the last round wrote 16777216 bytes")
    assert precopy.Rounds().add(0).startswith("converged")  # an idle service: one round is enough


def test_rounds_stop_when_memory_is_written_about_as_fast_as_it_is_copied():
    rounds = precopy.Rounds(limit=5, enough=16 * MIB, shrink=0.5)
    assert rounds.add(1024 * MIB) is None and rounds.add(400 * MIB) is None
    assert rounds.add(201 * MIB) == "not converging: the last round wrote %d bytes, the one before %d" % (
        201 * MIB, 400 * MIB)


def test_rounds_stop_at_their_limit():
    rounds = precopy.Rounds(limit=3, enough=0)
    assert [rounds.add(n * MIB) for n in (1000, 400, 100)] == [None, None, "round limit: 3 rounds"]
    with pytest.raises(ValueError):
        precopy.Rounds(limit=0)


def fake_runc(written_pages, fail_round=None):
    """runc pre-dumping: round K writes WRITTEN_PAGES[K-1] pages into its image directory (or fails at FAIL_ROUND)."""
    calls = []

    def run(argv):
        calls.append(argv)
        image_dir = argv[argv.index("--image-path") + 1]
        if len(calls) == fail_round:
            return 1, "", "criu failed: type PRE_DUMP errno 0\n"
        write_dump(image_dir, [(0x400000, written_pages[len(calls) - 1], PRESENT | 2)])
        return 0, "", ""
    return run, calls


def test_each_pre_dump_stands_on_the_one_before_until_the_rounds_stop(tmp_path):
    (tmp_path / CID / "9").mkdir(parents=True)  # an earlier run's pre-dumps: gone
    run, calls = fake_runc([2048, 512, 16])
    res = precopy.pre_copy(run, "/usr/bin/runc", CID, precopy.Rounds(enough=64 * pages.PAGE_SIZE), root=str(tmp_path))
    home = str(tmp_path / CID)
    assert calls == [["/usr/bin/runc", "checkpoint", "--pre-dump", "--image-path", home + "/1", "--work-path",
                      home + "/1", CID]] + [
        ["/usr/bin/runc", "checkpoint", "--pre-dump", "--image-path", "%s/%d" % (home, k), "--work-path",
         "%s/%d" % (home, k), "--parent-path", "../%d" % (k - 1), CID] for k in (2, 3)]
    assert [r["bytes"] for r in res["rounds"]] == [2048 * 4096, 512 * 4096, 16 * 4096]
    assert res["stopped"].startswith("converged") and res["error"] is None and res["parent"] == home + "/3"
    assert sorted(os.listdir(home)) == ["1", "2", "3"]


def test_a_failed_round_leaves_the_rounds_before_it_or_nothing(tmp_path):
    run, _calls = fake_runc([8192, 4096, 512], fail_round=2)
    res = precopy.pre_copy(run, "/usr/bin/runc", CID, root=str(tmp_path / "pre"))
    assert res["parent"] == str(tmp_path / "pre" / CID / "1") and len(res["rounds"]) == 1 and res["stopped"] is None
    assert res["error"] == "round 2: runc checkpoint --pre-dump failed (1): criu failed: type PRE_DUMP errno 0"
    assert os.listdir(str(tmp_path / "pre" / CID)) == ["1"]
    run, _calls = fake_runc([2048], fail_round=1)
    res = precopy.pre_copy(run, "/usr/bin/runc", CID, root=str(tmp_path / "pre"))
    assert res["parent"] is None and res["rounds"] == [] and res["error"].startswith("round 1:")
    assert not (tmp_path / "pre").exists()  # the final checkpoint writes everything, as without pre-copy


def test_a_kernel_without_soft_dirty_is_named_as_the_reason():
    said = "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"
    assert precopy.dirty_tracking_problem(lambda argv: (0, "", "")) is None
    problem = precopy.dirty_tracking_problem(lambda argv: (1, "", said) if argv == [
        "criu", "check", "--feature", "mem_dirty_track"] else (0, "", ""))
    assert problem.startswith("this kernel does not track the pages written to (CONFIG_MEM_SOFT_DIRTY") and \
        "Dirty tracking is OFF" in problem
