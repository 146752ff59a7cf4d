"""stack_plan: its decisions and error paths, with only the engine's commands faked."""

import json


from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


def test_stack_plan_reads_compose_dependencies_and_missing_containers_from_one_inspect():
    from ansible_collections.stacklift.migrate.plugins.modules import stack_plan
    from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
    from ansible_collections.stacklift.migrate.plugins.module_utils._stack.description import checked
    desc = {"name": "shop", "source": "node1", "target": "node2", "services": [
        {"name": "db", "container": "shop-db"}, {"name": "web", "container": "shop-web"},
        {"name": "cache", "container": "shop-cache"}]}
    norm = checked(desc, None, None)
    web = {"Id": "w1", "Name": "shop-web", "State": {"Running": True}, "Config": {"Labels": {
        "com.docker.compose.service": "web", "com.docker.compose.depends_on": "db:service_started:false"}}}
    db = {"Id": "d1", "Name": "shop-db", "State": {"Running": True}, "Config": {"Labels": {
        "com.docker.compose.service": "db"}}}
    runner = FakeRunner({"podman container inspect": (125, json.dumps([db, web]), "Error: no such container shop-cache\n"),
                         "podman ps": (0, json.dumps([{"Id": "x", "Names": ["other"], "State": "running"}]), "")})
    engine = PodmanEngine(runner)
    inspected = engine.containers_named(s["container"] for s in stack_plan.local_services(norm, "node1"))
    stack, found = stack_plan.discover(inspected, desc, norm, "node1")
    assert found == {"web": ["db"]} and [s.get("depends_on") for s in stack["services"]] == [None, ["db"], None]
    problems = stack_plan.container_problems(engine, inspected, norm, "node1")
    assert problems == ["service 'cache': no container 'shop-cache' on node1 (containers there: other)"]
    assert [c[:3] for c in runner.calls].count(["podman", "container", "inspect"]) == 1


def test_the_plan_takes_the_dependencies_every_source_read(run_module):
    from ansible_collections.stacklift.migrate.plugins.modules import stack_plan
    desc = {"name": "shop", "target": "n3", "services": [
        {"name": "db", "source": "n1"}, {"name": "cache", "source": "n2"},
        {"name": "app", "source": "n1"}, {"name": "worker", "source": "n2"}]}
    result, failed = run_module(stack_plan, {"stack": desc, "depends_on": {"app": ["db"], "worker": ["cache", "app"]}},
                                FakeRunner())
    assert not failed and result["plan"]["restore_order"] == [["db", "cache"], ["app"], ["worker"]], result
