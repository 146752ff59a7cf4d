"""window_target and window_wait in check mode: they say what they would do, and do nothing (no engine
command, no note, no wait)."""

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner

WINDOW = {"stack": "shop", "run_id": "r1", "archive_dir": "/a", "tiers": [["db", "cache"], ["app"]],
          "services": [{"name": "db", "container": "shop-db"}, {"name": "cache", "container": "shop-cache"},
                       {"name": "app", "container": "shop-app"}]}


def test_window_target_says_what_it_would_restore_tier_by_tier_and_runs_nothing(run_module, tmp_path):
    from ansible_collections.stacklift.migrate.plugins.modules import window_target
    runner = FakeRunner()
    result, failed = run_module(window_target, dict(WINDOW, commit=True), runner, check_mode=True)
    assert not failed and result["changed"] and runner.calls == []
    assert result["would"] == [
        "tier 1: restore db (container shop-db) from its archive in /a, probe it, hold it fenced",
        "tier 1: restore cache (container shop-cache) from its archive in /a, probe it, hold it fenced",
        "tier 2: restore app (container shop-app) from its archive in /a, probe it, hold it fenced",
        "lift the fences and serve"]
    result = run_module(window_target, dict(WINDOW, await_commit=True), runner, check_mode=True)[0]
    assert result["would"][-1] == "wait for the commit note, then serve"
    result = run_module(window_target, dict(WINDOW, state="absent"), runner, check_mode=True)[0]
    assert result["would"] == ["remove the copy of %s fenced here, if any" % s for s in (
        "app (container shop-app)", "cache (container shop-cache)", "db (container shop-db)")]
    assert runner.calls == []


def test_window_wait_says_which_stage_it_would_wait_for_and_leaves_no_note(run_module, tmp_path):
    from ansible_collections.stacklift.migrate.plugins.modules import window_wait
    args = {"job": {"results_file": str(tmp_path / "job")}, "stack": "shop", "run_id": "r1", "side": "target",
            "archive_dir": str(tmp_path), "stage": "commit", "timeout": 0.1}
    result, failed = run_module(window_wait, args, FakeRunner(), check_mode=True)
    assert not failed and not result["changed"]
    assert result["msg"] == "check mode: would leave the commit note, then wait for the target side's call (stage commit)"
    assert list(tmp_path.iterdir()) == []
