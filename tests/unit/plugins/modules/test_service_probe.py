"""service_probe: its decisions and error paths, with only the engine's commands faked."""

from ansible_collections.stacklift.migrate.plugins.modules import service_probe

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


def test_command_probe_needs_a_container_and_a_command(run_module):
    result, failed = run_module(service_probe, {"probe": {"type": "command", "host": "x"}}, FakeRunner())
    assert failed and result["msg"] == "a command probe runs probe.command in container: both are needed"


def test_every_missing_piece_is_named_at_once(run_module):
    result, failed = run_module(service_probe, {"probe": {"type": "tcp", "network": "shopnet", "interval": 0}},
                                FakeRunner())
    assert failed and result["problems"] == ["interval must be at least 0.01, not 0.0", "probe.host or container is "
                                             "needed: where to probe", "probe.network needs container"], result


def test_command_probe_runs_inside_the_container(run_module):
    runner = FakeRunner({"podman exec": (0, "", "")})
    result, failed = run_module(service_probe, {"container": "db", "probe": {"type": "command", "command": ["pg_isready"]}},
                                runner)
    assert not failed and result["ready"] and runner.calls[-1] == ["/usr/bin/podman", "exec", "--", "db", "pg_isready"]


def test_probe_not_ready_fails_with_the_last_answer(run_module):
    runner = FakeRunner({"podman exec": (2, "", "no response")})
    result, failed = run_module(service_probe, {"container": "db", "probe": {
        "type": "command", "command": ["pg_isready"], "retries": 3, "interval": 0.01}}, runner)
    assert failed and result["attempts"] == 3 and "no response" in result["msg"]


def test_a_stack_descriptions_probe_is_taken_whole(run_module):
    """The shape a service's probe has in a stack description is the module's own: every key of it is an option."""
    from ansible_collections.stacklift.migrate.plugins.module_utils._services.probes import PROBE_SPEC
    from ansible_collections.stacklift.migrate.plugins.module_utils._stack import description
    assert set(description.SERVICE_OPTIONS["probe"]["options"]) == set(PROBE_SPEC.options)
    stack = {"name": "shop", "source": "n1", "target": "n2", "services": [{"name": "db", "container": "db", "probe": {
        "type": "command", "command": ["true"], "retries": 1, "stable_for": 0, "progress_command": ["date"],
        "progress_baseline": "0"}}]}
    planned = description.plan(description.checked(stack))["services"][0]
    runner = FakeRunner({"podman exec": (0, "1\n", "")})
    result, failed = run_module(service_probe, {"container": planned["container"], "probe": planned["probe"]}, runner)
    assert not failed and result["ready"] and result["progress_value"] == "1", result
