"""Unit-test helpers: run a module's main() with arguments and a fake engine runner."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".cache" / "collections"))  # ansible_collections.stacklift.migrate

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402


class Exit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, runner, check_mode=False) -> (result, failed)."""

    def _run(module, args, runner, check_mode=False, diff=False):
        def exit_json(self, **kw):
            raise Exit(kw, False)

        def fail_json(self, msg, **kw):
            kw["msg"] = msg
            raise Exit(kw, True)

        def run_command(self, argv, **kw):
            return runner(argv, **kw)

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        monkeypatch.setattr("ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection._which",
                            lambda b: "/usr/bin/" + b if b == "podman" else None)
        args = dict(args)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with pytest.raises(Exit) as exc:
                module.main()
        return exc.value.result, exc.value.failed

    return _run
