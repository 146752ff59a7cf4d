"""The modules that need paramiko say so, as Ansible's missing_required_lib does."""


import pytest

from ansible_collections.stacklift.migrate.plugins.modules import checkpoint_transfer, image_sync

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


@pytest.mark.parametrize("module,args", [
    (checkpoint_transfer, {"src": "/x", "target_host": "h"}),
    (image_sync, {"image": "x", "target_host": "h"}),
])
def test_ssh_modules_say_paramiko_is_missing(run_module, monkeypatch, module, args):
    monkeypatch.setattr(module, "HAS_PARAMIKO", False)
    result, failed = run_module(module, args, FakeRunner())
    assert failed and "paramiko" in result["msg"]
