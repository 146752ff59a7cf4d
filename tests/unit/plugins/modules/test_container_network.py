"""container_network: made when missing, left alone when right, refused when it differs; only the engine faked."""

import json

import pytest

from ansible_collections.stacklift.migrate.plugins.modules import container_network
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner

SHOPNET = [{"name": "shopnet", "subnets": [{"subnet": "10.89.10.0/24"}], "containers": {}}]
MISSING = (125, "", "Error: unable to find network with name or ID shopnet: network not found")


def runner_with(exists):
    state = {"exists": exists}

    def inspect(argv):
        return (0, json.dumps(SHOPNET), "") if state["exists"] else MISSING

    def create(argv):
        state["exists"] = True
        return 0, "shopnet\n", ""
    return FakeRunner({"podman network inspect": inspect, "podman network create": create,
                       "podman network rm": (0, "", "")})


def test_a_missing_network_is_made_with_its_subnet_then_left_alone(run_module):
    runner = runner_with(False)
    result, failed = run_module(container_network, {"name": "shopnet", "subnets": ["10.89.10.0/24"]}, runner)
    assert not failed and result["changed"] and result["network"]["subnets"] == ["10.89.10.0/24"]
    assert ["/usr/bin/podman", "network", "create", "--subnet", "10.89.10.0/24", "--", "shopnet"] in runner.calls
    result, failed = run_module(container_network, {"name": "shopnet", "subnets": ["10.89.10.0/24"]}, runner)
    assert not failed and not result["changed"]


def test_check_mode_changes_nothing(run_module):
    runner = runner_with(False)
    result, failed = run_module(container_network, {"name": "shopnet", "subnets": ["10.89.10.0/24"]}, runner,
                                check_mode=True, diff=True)
    assert not failed and result["changed"] and result["diff"]["before"] == {}
    assert not runner.commands("podman network create")


@pytest.mark.parametrize("subnets, message", [(["10.89.99.0/24"], "exists here with subnet 10.89.10.0/24, not 10.89.99.0/24")])
def test_a_network_with_other_subnets_is_not_touched(run_module, subnets, message):
    runner = runner_with(True)
    result, failed = run_module(container_network, {"name": "shopnet", "subnets": subnets}, runner)
    assert failed and message in result["msg"]
    assert not runner.commands("podman network create") and not runner.commands("podman network rm")
