"""Which engine a host has (auto prefers Podman), and engine commands bounded inside the window."""


import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import base
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import selection
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine


def test_auto_prefers_podman():
    engine = selection.select_engine("auto", runner=None, which=lambda b: "/usr/bin/podman" if b == "podman" else None)
    assert isinstance(engine, PodmanEngine) and engine.binary == "/usr/bin/podman"


def test_podman_asked_for_but_missing_is_a_clear_error():
    with pytest.raises(base.EngineError, match="no podman binary"):
        selection.select_engine("podman", runner=None, which=lambda b: None)


def test_no_engine_at_all():
    with pytest.raises(base.EngineError, match="no container engine found"):
        selection.select_engine("auto", runner=None, which=lambda b: None)


def test_unknown_engine_name():
    with pytest.raises(base.EngineError, match="engine must be one of"):
        selection.select_engine("lxc", runner=None)


def test_commands_inside_the_window_are_bounded_leaving_time_for_the_abort_note():
    """Issue 20: an engine, CRIU or nft command that hangs must end before the window does."""
    from ansible_collections.stacklift.migrate.plugins.module_utils._window import module as window_module

    class Module:
        calls = []

        def get_bin_path(self, name, required=False):
            return "/usr/bin/" + name

        def run_command(self, argv, data=None, binary_data=False):
            self.calls.append(argv)
            return 0, "", ""
    module = Module()
    selection.bounded_runner(module, 270)(["podman", "container", "checkpoint", "db"])
    selection.bounded_runner(module)(["podman", "info"])
    assert module.calls == [["/usr/bin/timeout", "-k", "10", "270", "podman", "container", "checkpoint", "db"],
                            ["podman", "info"]]
    assert window_module.window_command_timeout(300) == 270 and window_module.window_command_timeout(20) == 30
    host = window_module.window_host(module, None)
    host.run(["nft", "list", "table", "inet", "stacklift_shop"])
    assert module.calls[-1][:4] == ["/usr/bin/timeout", "-k", "10", "30"]
