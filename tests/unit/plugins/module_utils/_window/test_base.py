"""What both sides of the window share: a run that ended is never started again."""


import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import base as window
from ansible_collections.stacklift.migrate.plugins.module_utils._window import source as window_source
from ansible_collections.stacklift.migrate.plugins.module_utils._window import target as window_target
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal
from ansible_collections.stacklift.migrate.tests.unit.plugins.module_utils._window.window_fakes import (
    Containers, SERVICES, Sender, engine_runner, make_window)


def test_a_rolled_back_run_called_again_fences_nothing_and_fails(tmp_path):
    """Issue 20: the same run id again, after its rollback, fenced the running containers, sent the old
    archives and reported success."""
    containers = Containers(**{"shop-db": "running", "shop-cache": "running", "shop-app": "running"})
    runner = engine_runner(tmp_path, containers)
    marker = Journal(str(tmp_path / "ck" / "shop.journal"))
    for step in ("fenced", "checkpointed", "rolled_back", "unfenced"):
        marker.append(step, run="r1", service="db")
    sender = Sender()
    with pytest.raises(window.WindowError, match="run r1 of stack shop was rolled back on this host .*start a new run"):
        make_window(window_source.SourceWindow, tmp_path, runner, sender=sender).checkpointed()
    assert not any(c[0] == "nsenter" or "checkpoint" in c for c in runner.calls) and not sender.sent
    marker.append("removed", run="r1", service="db")
    with pytest.raises(window.WindowError, match="rolled back on this host \\(removed: db\\)"):
        make_window(window_target.TargetWindow, tmp_path, runner, services={"db": SERVICES["db"]}).restored()
    assert not runner.commands("nft")
