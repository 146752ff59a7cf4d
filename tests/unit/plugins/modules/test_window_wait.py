"""window_wait run on the host itself: the commit split in two (the note left at once, the wait for "served"
later), and the parameters that cannot go together refused before any note is left."""

import json

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window.protocol import read_note, write_note
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


def wait_args(tmp_path, **kw):
    job = tmp_path / "job"
    job.write_text(json.dumps({"started": 1, "finished": 0}))  # the call goes on
    args = {"job": {"results_file": str(job), "ansible_job_id": "j1"}, "stack": "shop", "run_id": "r1",
            "side": "target", "archive_dir": str(tmp_path / "a"), "timeout": 0.3}
    args.update(kw)
    return args


@pytest.fixture
def window_wait():
    from ansible_collections.stacklift.migrate.plugins.modules import window_wait
    return window_wait


def test_the_commit_note_without_waiting_returns_at_once_and_served_waits_for_the_targets_word(
        run_module, tmp_path, window_wait):
    result, failed = run_module(window_wait, wait_args(tmp_path, stage="commit", wait=False, timeout=30), FakeRunner())
    assert not failed and result["changed"] and result["note"] == "commit" and result["ansible_job_id"] == "j1"
    assert read_note(str(tmp_path / "a"), "shop", "commit", "r1") == ""
    # The target's call has not served yet: the wait for it times out, and leaves no note of its own.
    result, failed = run_module(window_wait, wait_args(tmp_path, stage="served"), FakeRunner())
    assert failed and "did not end within" in result["msg"]
    write_note(str(tmp_path / "a"), "shop", "served", "r0")  # an earlier run's word is not this run's
    assert run_module(window_wait, wait_args(tmp_path, stage="served"), FakeRunner())[1]
    write_note(str(tmp_path / "a"), "shop", "served", "r1")
    result, failed = run_module(window_wait, wait_args(tmp_path, stage="served"), FakeRunner())
    assert not failed and result["committed"] and not result["ready"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["shop.commit", "shop.served"]


def test_the_source_side_commit_without_waiting_also_lifts_its_answers(run_module, tmp_path, window_wait):
    runner = FakeRunner({"sh -c": (0, "", "")})
    result, failed = run_module(window_wait, wait_args(tmp_path, stage="commit", side="source", wait=False), runner)
    assert not failed and result["note"] == "commit"
    assert len(runner.calls) == 1 and "nft delete table inet stacklift_shop" in runner.calls[0][-1]


@pytest.mark.parametrize("kw, problem", [
    ({"stage": "end", "wait": False}, "wait=false leaves a note and returns: it needs stage commit or abort, not end"),
    ({"stage": "served", "wait": False}, "it needs stage commit or abort, not served"),
    ({"stage": "served", "side": "source"}, "stage served is a target's call's stage: it needs side=target"),
    ({"stage": "cut", "side": "target"}, "stage cut is a source's call's stage: it needs side=source"),
    ({"stage": "served", "run_id": None}, "stage served needs run_id"),
])
def test_parameters_that_do_not_go_together_are_refused_before_any_note(run_module, tmp_path, window_wait, kw, problem):
    for check_mode in (False, True):
        result, failed = run_module(window_wait, wait_args(tmp_path, **kw), FakeRunner(), check_mode=check_mode)
        assert failed and problem in result["msg"]
    assert not (tmp_path / "a").exists()


def test_check_mode_says_it_would_only_leave_the_note(run_module, tmp_path, window_wait):
    result, failed = run_module(window_wait, wait_args(tmp_path, stage="commit", wait=False), FakeRunner(),
                                check_mode=True)
    assert not failed and result["msg"] == "check mode: would leave the commit note for the target side's call"
    assert not (tmp_path / "a").exists()


def test_the_cut_returns_once_the_sources_call_says_every_service_is_fenced(run_module, tmp_path, window_wait):
    """stacklift_traffic_switch_at: cut waits for this: the source's "cut" note of the run, no note of its own."""
    args = wait_args(tmp_path, stage="cut", side="source")
    result, failed = run_module(window_wait, args, FakeRunner())
    assert failed and "did not end within" in result["msg"]
    write_note(str(tmp_path / "a"), "shop", "cut", "r1")
    result, failed = run_module(window_wait, args, FakeRunner())
    assert not failed and result["cut"] and not result["committed"] and result["side"] == "source"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["shop.cut"]
