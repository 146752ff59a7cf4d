"""The roles' argument specs are generated from the collection's specs and are up to date."""

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def generator():
    spec = importlib.util.spec_from_file_location("argument_specs", REPO / "hack" / "argument_specs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_roles_argument_specs_are_up_to_date():
    assert generator().main(check=True) == 0


def test_the_role_spec_checks_the_stack_as_stack_plan_does():
    from ansible_collections.stacklift.migrate.plugins.module_utils._stack import description as stack
    spec = yaml.safe_load((REPO / "roles" / "migrate_stack" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert options["stacklift_stack"]["required"] is True
    services = options["stacklift_stack"]["options"]["services"]["options"]
    assert set(services) == set(stack.SERVICE_OPTIONS)
    assert services["probe"]["options"]["postgres_password"]["no_log"] is True
    assert set(services["probe"]["options"]) == set(stack.PROBE_SPEC.options)
    assert options["stacklift_cleanup_source"]["type"] == "bool"
