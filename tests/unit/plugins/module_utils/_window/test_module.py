"""What the window's two modules share: the niceness they run at."""

import os

import pytest


def test_an_agent_runs_at_the_niceness_asked_and_a_refusal_is_a_warning(monkeypatch):
    from ansible_collections.stacklift.migrate.plugins.module_utils._window import module as window_module

    class Module:
        def __init__(self, nice):
            self.params, self.warnings = {"nice": nice}, []

        def warn(self, msg):
            self.warnings.append(msg)

        def fail_json(self, **kw):
            raise AssertionError(kw["msg"])

    calls = []
    monkeypatch.setattr(window_module.os, "setpriority", lambda which, who, n: calls.append((which, who, n)))
    window_module.set_nice(Module(-5))
    window_module.set_nice(Module(0))
    assert calls == [(os.PRIO_PROCESS, 0, -5)]

    def refuse(which, who, n):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(window_module.os, "setpriority", refuse)
    m = Module(-5)
    window_module.set_nice(m)
    assert m.warnings == ["cannot run at niceness -5 here ([Errno 1] Operation not permitted); running at the host's own"]
    with pytest.raises(AssertionError, match="nice must be from -20 to 19, not -30"):
        window_module.set_nice(Module(-30))
