"""The stack description: every mistake named, and the tiers a migration walks."""

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._stack import description as st


def shop(**changes):
    stack = {"name": "shop", "source": "node1", "target": "node2", "services": [
        {"name": "db", "container": "shop-db", "probe": {"type": "postgres"}, "quiesce": "postgres_idle"},
        {"name": "cache", "container": "shop-cache", "probe": {"type": "redis"}},
        {"name": "app", "container": "shop-app", "depends_on": ["db", "cache"],
         "probe": {"type": "http", "port": 8080}, "quiesce": {"method": "http_drain", "port": 8080}},
    ]}
    stack.update(changes)
    return stack


def test_the_shop_plan():
    plan = st.plan(shop())
    assert plan["checkpoint_order"] == [["db", "cache"], ["app"]]
    assert plan["restore_order"] == [["db", "cache"], ["app"]]
    assert plan["quiesce_order"] == [["app"], ["db", "cache"]]
    assert plan["by_name"]["db"]["quiesce"] == {"method": "postgres_idle"}
    assert plan["by_name"]["cache"]["tcp"] == "established" and plan["by_name"]["cache"]["quiesce"]["method"] == "none"
    assert plan["source_hosts"] == ["node1"] and plan["target_hosts"] == ["node2"]
    assert [s["tier"] for s in plan["services"]] == [0, 0, 1]


def test_a_chain_gives_one_service_per_tier():
    stack = shop(services=[{"name": "web", "depends_on": "api"}, {"name": "api", "depends_on": ["db"]},
                           {"name": "db"}])
    assert st.plan(stack)["checkpoint_order"] == [["db"], ["api"], ["web"]]


def test_a_cycle_is_named():
    stack = shop()
    stack["services"][0]["depends_on"] = ["app"]
    with pytest.raises(st.StackError) as exc:
        st.plan(stack)
    assert exc.value.problems == ["depends_on has a cycle: db -> app -> db"]


def test_self_dependency_is_a_cycle():
    with pytest.raises(st.StackError, match="cycle: db -> db"):
        st.plan(shop(services=[{"name": "db", "depends_on": ["db"]}]))


def test_every_mistake_is_listed_at_once():
    stack = shop(services=[
        {"name": "db", "probe": {"type": "mysql"}, "tcp": "maybe"},
        {"name": "db"},
        {"name": "app", "depends_on": ["queue"], "quiesce": "pray", "colour": "red"},
        {"container": "x"},
    ])
    with pytest.raises(st.StackError) as exc:
        st.plan(stack)
    p = exc.value.problems
    assert ("service 'db' probe: value of type must be one of: tcp, http, command, postgres, redis, got: mysql"
            in p)
    assert "service 'db': value of tcp must be one of: established, close, got: maybe" in p
    assert "duplicate service name 'db'" in p
    assert "service 'app' depends on 'queue', which is not a service of the stack" in p
    assert any(x.startswith("service 'app' quiesce: value of method must be one of: none,") for x in p)
    assert "service 'app': unknown keys colour (allowed: container, depends_on, memory, name, probe, quiesce, " \
        "source, target, tcp)" in p
    assert "service #4 has no name" in p


@pytest.mark.parametrize("change, message", [
    ({"probe": {"timeout": "soon"}},
     "service 'db' probe: argument 'timeout' is of type str and we were unable to convert to float"),
    ({"probe": "tcp"}, "service 'db' probe must be a mapping, not 'tcp'"),
    ({"depends_on": 5}, "service 'db' depends on 5, which is not a service of the stack"),
    ({"quiesce": {"method": "http_drain"}},
     "service 'db' quiesce: method is http_drain but all of the following are missing: port"),
    ({"quiesce": {"method": "connections_zero"}},
     "service 'db' quiesce: method is connections_zero but all of the following are missing: port"),
    ({"probe": {"type": "redis", "interval": -1}}, "service 'db' probe: interval must be at least 0.01, not -1.0"),
    ({"probe": {"type": "command"}}, "service 'db' probe: type command needs command"),
    ({"container": "-l"}, "service 'db': '-l' is not a container name"),
    ({"container": "a b"}, "service 'db': 'a b' is not a container name"),
    ({"name": "../db"}, "service '../db': a service name is letters, digits"),
    ({"probe": {"type": "http", "port": 0}}, "service 'db' probe: port must be at least 1, not 0"),
])
def test_a_wrong_setting_is_named(change, message):
    stack = shop()
    stack["services"][0].update(change)
    with pytest.raises(st.StackError) as exc:
        st.plan(stack)
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize("change, message", [
    ({"networks": "shopnet"}, "the stack: Elements value for option 'networks' is of type"),
    ({"networks": [{"subnet": "10.0.0.0/24"}]}, "the stack: missing required arguments: name"),
    ({"name": "/etc/x"}, "the stack's name '/etc/x': letters, digits"),
    ({"name": ["shop"]}, "the stack's name ['shop']"),
    ({"colour": "red"}, "the stack: unknown keys colour (allowed: memory, name, networks, services, source, target)"),
])
def test_a_wrong_stack_setting_is_named(change, message):
    with pytest.raises(st.StackError) as exc:
        st.plan(shop(**change))
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


def test_passwords_and_probe_options_reach_the_plan():
    stack = shop()
    stack["services"][0]["probe"] = {"type": "postgres", "postgres_user": "shop", "postgres_password": "s3cret",
                                     "interval": "0.5"}
    stack["services"][0]["quiesce"] = {"method": "postgres_idle", "postgres_password": "s3cret"}
    db = st.plan(stack)["by_name"]["db"]
    assert db["probe"] == {"type": "postgres", "postgres_user": "shop", "postgres_password": "s3cret", "interval": 0.5}
    assert db["quiesce"] == {"method": "postgres_idle", "postgres_password": "s3cret"}


def test_hosts_are_required_and_must_differ():
    with pytest.raises(st.StackError, match="service 'db' has no target host"):
        st.plan(shop(target=None))
    with pytest.raises(st.StackError, match="would move from node1 to itself"):
        st.plan(shop(target="node1"))


def test_a_service_may_have_its_own_target():
    stack = shop()
    stack["services"][1]["target"] = "node3"
    assert st.plan(stack)["target_hosts"] == ["node2", "node3"]


def test_two_services_on_one_container():
    stack = shop()
    stack["services"][1]["container"] = "shop-db"
    with pytest.raises(st.StackError, match="services 'db' and 'cache' both name container 'shop-db' on source node1"):
        st.plan(stack)


def test_two_services_landing_on_one_target_under_one_container_name():
    """From two sources to one target, under one name: the second restore would meet the first's copy."""
    stack = shop()
    stack["services"][1].update(container="shop-db", source="node3")
    with pytest.raises(st.StackError) as e:
        st.plan(stack)
    assert e.value.problems == ["services 'db' and 'cache' both name container 'shop-db' on target node2"]
    stack["services"][1]["target"] = "node4"
    assert st.plan(stack)["target_hosts"] == ["node2", "node4"]


def test_empty_or_nameless_stacks():
    with pytest.raises(st.StackError, match="has no services"):
        st.plan({"name": "x", "services": []})
    with pytest.raises(st.StackError, match="must be a mapping"):
        st.plan(["db"])


def test_compose_labels():
    labels = {"com.docker.compose.service": "web",
              "com.docker.compose.depends_on": "db:service_started:false, cache:service_healthy:true"}
    assert st.compose_depends_on(labels) == ["db", "cache"]
    assert st.compose_service(labels) == "web"
    assert st.compose_depends_on({}) == [] and st.compose_service(None) is None


def test_numeric_settings_have_minimums():
    assert st.setting_problems({"stacklift_probe_timeout": "60", "stacklift_window_timeout": 300}) == []
    assert st.setting_problems({"stacklift_probe_timeout": -1, "stacklift_window_timeout": "soon"}) == [
        "stacklift_window_timeout must be a number, not 'soon'", "stacklift_probe_timeout must be at least 0.1, not -1.0"]


def test_dependencies_read_on_two_sources_both_reach_the_plan():
    """Each source reads the compose labels of its own services; the plan kept must have what both read."""
    desc = {"name": "shop", "target": "n3", "services": [
        {"name": "db", "source": "n1"}, {"name": "cache", "source": "n2"},
        {"name": "app", "source": "n1"}, {"name": "worker", "source": "n2"}]}
    from_n1, from_n2 = {"app": ["db"]}, {"worker": ["cache", "app"]}
    last_only = st.plan(st.with_depends_on(desc, from_n2))     # what keeping the last source's plan gave
    assert last_only["by_name"]["app"]["depends_on"] == []
    merged = st.plan(st.with_depends_on(desc, dict(from_n1, **from_n2)))
    assert merged["by_name"]["app"]["depends_on"] == ["db"]
    assert merged["restore_order"] == [["db", "cache"], ["app"], ["worker"]]
    assert "depends_on" not in desc["services"][2]  # the description itself is left as it was


def test_found_dependencies_come_after_the_described_ones_without_repeats():
    desc = {"name": "shop", "source": "n1", "target": "n2", "services": [
        {"name": "db"}, {"name": "cache"}, {"name": "app", "depends_on": ["cache"]}]}
    assert st.plan(st.with_depends_on(desc, {"app": ["db", "cache"]}))["by_name"]["app"]["depends_on"] == \
        ["cache", "db"]
