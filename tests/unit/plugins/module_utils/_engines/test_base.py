"""The engine interface's shared parts: versions read from answers, and errors as fail_json takes them."""


import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import base


@pytest.mark.parametrize("text,version", [
    ("Version: 4.2.1", (4, 2, 1)), ("5.4.2", (5, 4, 2)), ("6.18.44-fc-v669", (6, 18, 44)),
    ("runc version 1.1.15+ds1", (1, 1, 15)), ("4.2", (4, 2)), ("", None), (None, None),
])
def test_parse_version(text, version):
    assert base.parse_version(text) == version


def test_engine_error_gives_fail_json_arguments():
    e = base.EngineError("boom", cmd=["podman", "x"], rc=125, stdout="o", stderr="e", name="db")
    assert e.fail_kwargs() == {"msg": "boom", "rc": 125, "stdout": "o", "stderr": "e", "cmd": "podman x",
                               "name": "db"}
