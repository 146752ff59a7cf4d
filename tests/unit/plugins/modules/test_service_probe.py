"""service_probe: its decisions and error paths, with only the engine's commands faked."""


from ansible_collections.stacklift.migrate.plugins.modules import service_probe

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


def test_command_probe_needs_a_container_and_a_command(run_module):
    result, failed = run_module(service_probe, {"type": "command", "host": "x"}, FakeRunner())
    assert failed and "container" in result["msg"]


def test_command_probe_runs_inside_the_container(run_module):
    runner = FakeRunner({"podman exec": (0, "", "")})
    result, failed = run_module(service_probe, {"type": "command", "container": "db", "command": ["pg_isready"]},
                                runner)
    assert not failed and result["ready"] and runner.calls[-1] == ["/usr/bin/podman", "exec", "--", "db", "pg_isready"]


def test_probe_not_ready_fails_with_the_last_answer(run_module):
    runner = FakeRunner({"podman exec": (2, "", "no response")})
    result, failed = run_module(service_probe, {"type": "command", "container": "db", "command": ["pg_isready"],
                                                "retries": 3, "interval": 0.01}, runner)
    assert failed and result["attempts"] == 3 and "no response" in result["msg"]
