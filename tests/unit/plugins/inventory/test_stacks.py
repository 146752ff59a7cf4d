"""The stacks inventory plugin, as ansible-inventory runs it: one inventory host per stack, grouped by
source and labels; every problem of a bad file at once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.stacklift.migrate.plugins.module_utils._stack import hosts as plugin_mod  # noqa: E402


def inventory(tmp_path, text, name="fleet.stacks.yml"):
    path = tmp_path / name
    path.write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    res = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"], cwd=str(REPO), env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    return res, (json.loads(res.stdout) if res.returncode == 0 else None)


def test_one_host_per_stack_grouped_by_source_and_labels(tmp_path):
    res, inv = inventory(tmp_path, """
plugin: stacklift.migrate.stacks
stacks:
  - {name: shop, source: node1, labels: {app: shop}, spread: [shops], vars: {stacklift_traffic_switch_tasks: /t.yml},
     services: [{name: db, container: shop-db}]}
  - {name: sessions, source: node2, requires: [ssd], services: [{name: cache}]}
keyed_groups:
  - key: stacklift_fleet.requires
    prefix: needs
""")
    assert res.returncode == 0, res.stderr
    assert sorted(inv["stacks"]["hosts"]) == ["stack_sessions", "stack_shop"]
    assert inv["stacks_on_node1"]["hosts"] == ["stack_shop"] and inv["stacks_app_shop"]["hosts"] == ["stack_shop"]
    assert inv["needs_ssd"]["hosts"] == ["stack_sessions"]
    shop = inv["_meta"]["hostvars"]["stack_shop"]
    # the description is what stack_plan validates: the fleet's own keys are kept apart
    assert shop["stacklift_stack_description"] == {"name": "shop", "source": "node1",
                                                   "services": [{"name": "db", "container": "shop-db"}]}
    assert shop["stacklift_fleet"] == {"labels": {"app": "shop"}, "requires": [], "spread": ["shops"], "cpus": None}
    assert shop["stacklift_traffic_switch_tasks"] == "/t.yml"


def test_every_problem_of_the_file_at_once(tmp_path):
    res = inventory(tmp_path, """
plugin: stacklift.migrate.stacks
stacks:
  - {name: shop, source: node1}
  - {name: shop, source: node1}
  - {name: "bad name", labels: [x], spread: x}
""")[0]
    assert res.returncode != 0
    for part in ("stack 'shop' is listed twice", "'bad name' is not an identifier", "has no source host",
                 "labels must be a dict", "spread must be a list"):
        assert part in res.stderr, res.stderr


def test_a_file_of_another_name_is_not_read(tmp_path):
    res = inventory(tmp_path, "plugin: stacklift.migrate.stacks\nstacks: [{name: a, source: b}]\n", name="hosts.yml")[0]
    assert res.returncode != 0


def test_stack_hosts_is_plain_python():
    hosts = plugin_mod.stack_hosts([{"name": "shop", "source": "node1"}, {"name": "s", "source": "node-2"}], prefix="s_")
    assert [h[0] for h in hosts] == ["s_shop", "s_s"] and hosts[1][2] == ["stacks", "stacks_on_node_2"]


def test_a_list_of_stacks_in_a_variable_gives_the_same_hosts_for_add_host():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.stacklift.migrate.plugins.filter.stack_hosts import stack_hosts
    hosts = stack_hosts([{"name": "shop", "source": "node1", "labels": {"app": "shop"}, "spread": ["shops"],
                          "vars": {"stacklift_probe_timeout": 90}, "services": [{"name": "db"}]}])
    assert hosts == [{
        "name": "stack_shop", "groups": ["stacks", "stacks_on_node1", "stacks_app_shop"],
        "ansible_connection": "local", "stacklift_probe_timeout": 90, "stacklift_stack_source": "node1",
        "stacklift_stack_description": {"name": "shop", "source": "node1", "services": [{"name": "db"}]},
        "stacklift_fleet": {"labels": {"app": "shop"}, "requires": [], "spread": ["shops"], "cpus": None}}]
    with pytest.raises(AnsibleFilterError) as e:
        stack_hosts([{"name": "a"}, {"name": "a", "source": "n"}])
    assert "stack 'a' has no source host" in str(e.value) and "stack 'a' is listed twice" in str(e.value)


def test_slices_deal_the_stacks_in_turn_into_groups_each_job_can_limit_to(tmp_path):
    res, inv = inventory(tmp_path, "plugin: stacklift.migrate.stacks\nslices: 2\nstacks:\n"
                         + "".join("  - {name: s%d, source: node1}\n" % i for i in range(5)))
    assert res.returncode == 0, res.stderr
    assert inv["stacks_slice_1_of_2"]["hosts"] == ["stack_s0", "stack_s2", "stack_s4"]
    assert inv["stacks_slice_2_of_2"]["hosts"] == ["stack_s1", "stack_s3"]
    unsliced = inventory(tmp_path, "plugin: stacklift.migrate.stacks\nstacks: [{name: a, source: n}]\n")[1]
    assert not [g for g in unsliced if "slice" in g]
    res = inventory(tmp_path, "plugin: stacklift.migrate.stacks\nslices: 0\nstacks: [{name: a, source: n}]\n")[0]
    assert res.returncode != 0 and "slices must be 1 or more, not 0" in res.stderr
