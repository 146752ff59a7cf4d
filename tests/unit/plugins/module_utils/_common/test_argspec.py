"""ArgumentSpec: pieces merged, changed and narrowed into new specs, never edited in place."""

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec

ENGINE = ArgumentSpec(dict(engine=dict(type="str", default="auto", choices=["auto", "podman"])))
SSH = ArgumentSpec(dict(target_host=dict(type="str", required=True), target_port=dict(type="int", default=22)),
                   required_together=[("target_host", "target_port")])


def test_merge_takes_options_and_rules_of_every_piece_and_changes_none():
    spec = ENGINE.merge(SSH, state=dict(type="str", default="on"))
    assert sorted(spec.options) == ["engine", "state", "target_host", "target_port"]
    assert spec.rules == {"required_together": [("target_host", "target_port")]}
    assert sorted(ENGINE.options) == ["engine"] and ENGINE.rules == {}


def test_change_gives_an_option_another_default_in_a_copy():
    spec = SSH.change(target_port=dict(default=2222))
    assert spec.options["target_port"] == {"type": "int", "default": 2222}
    assert SSH.options["target_port"]["default"] == 22
    with pytest.raises(KeyError):
        SSH.change(nothing=dict(default=1))


def test_without_drops_an_option_and_the_rules_that_name_it():
    spec = SSH.merge(ArgumentSpec(required_if=[("target_port", 23, ("telnet",))], required_by={"target_host": "x"}))
    narrowed = spec.without("target_host")
    assert list(narrowed.options) == ["target_port"]
    assert narrowed.rules == {"required_together": [], "required_if": [("target_port", 23, ("telnet",))],
                              "required_by": {}}


def test_the_kwargs_of_a_module_or_an_action():
    assert SSH.validate_kwargs() == {"argument_spec": SSH.options,
                                     "required_together": [("target_host", "target_port")]}
    with pytest.raises(ValueError, match="unknown argument spec rules: required_always"):
        ArgumentSpec({}, required_always=["x"])
