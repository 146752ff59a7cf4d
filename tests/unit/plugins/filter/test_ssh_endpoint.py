"""Where a source reaches its target host to host: the target's inventory address, port and user."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.stacklift.migrate.plugins.filter.ssh_endpoint import ssh_endpoint
from ansible_collections.stacklift.migrate.plugins.module_utils._transport import ssh as _ssh
from ansible_collections.stacklift.migrate.plugins.module_utils._transport.ssh import known_hosts_name, parse_endpoint

HOSTVARS = {
    "node2": {"ansible_host": "10.0.0.12"},
    "edge": {"ansible_host": "192.0.2.7", "ansible_port": 2222, "stacklift_ssh_user_on_host": "stacklift"},
    "v6": {"ansible_host": "fd00::12", "ansible_port": "2200"},
    "bare": {},
}


def test_the_endpoint_comes_from_the_targets_inventory_variables():
    assert ssh_endpoint("node2", HOSTVARS) == "root@10.0.0.12:22"
    assert ssh_endpoint("edge", HOSTVARS) == "stacklift@192.0.2.7:2222"
    assert ssh_endpoint("v6", HOSTVARS) == "root@[fd00::12]:2200"
    assert ssh_endpoint("bare", HOSTVARS) == "root@bare:22"
    assert ssh_endpoint("edge", HOSTVARS, known_hosts=True) == "[192.0.2.7]:2222"
    assert ssh_endpoint("node2", HOSTVARS, known_hosts=True) == "10.0.0.12"
    with pytest.raises(AnsibleFilterError, match="nowhere is not a host of the inventory"):
        ssh_endpoint("nowhere", HOSTVARS)


@pytest.mark.parametrize("address, expected", [
    ("10.0.0.12", ("root", "10.0.0.12", 22)),
    ("root@10.0.0.12:22", ("root", "10.0.0.12", 22)),
    ("stacklift@192.0.2.7:2222", ("stacklift", "192.0.2.7", 2222)),
    ("node2:2200", ("root", "node2", 2200)),
    ("root@[fd00::12]:2200", ("root", "fd00::12", 2200)),
    ("[fd00::12]", ("root", "fd00::12", 22)),
    ("fd00::12", ("root", "fd00::12", 22)),
])
def test_an_endpoint_parses_back_to_user_host_and_port(address, expected):
    assert parse_endpoint(address) == expected


def test_a_known_hosts_name_carries_a_port_other_than_22():
    assert known_hosts_name("10.0.0.12", 22) == "10.0.0.12" and known_hosts_name("10.0.0.12", "2222") == "[10.0.0.12]:2222"


def test_a_jump_host_comes_first_and_chains():
    hostvars = dict(HOSTVARS, behind={"ansible_host": "10.0.1.5", "stacklift_ssh_jump_host": "edge"},
                    deeper={"ansible_host": "10.0.2.5", "stacklift_ssh_jump_host": "behind"})
    assert ssh_endpoint("behind", hostvars) == "stacklift@192.0.2.7:2222,root@10.0.1.5:22"
    assert ssh_endpoint("deeper", hostvars) == "stacklift@192.0.2.7:2222,root@10.0.1.5:22,root@10.0.2.5:22"
    assert ssh_endpoint("behind", hostvars, known_hosts=True) == "10.0.1.5"
    assert _ssh.hops(ssh_endpoint("deeper", hostvars))[-1] == "root@10.0.2.5:22"


def test_jump_hosts_that_go_round_in_a_circle_are_refused():
    hostvars = {"a": {"stacklift_ssh_jump_host": "b"}, "b": {"stacklift_ssh_jump_host": "a"},
                "c": {"stacklift_ssh_jump_host": "c"}}
    with pytest.raises(AnsibleFilterError, match="go round in a circle \\(a -> b -> a\\)"):
        ssh_endpoint("a", hostvars)
    with pytest.raises(AnsibleFilterError, match="circle"):
        ssh_endpoint("c", hostvars)


def test_the_hosts_on_the_way_are_the_jump_hosts_then_the_target():
    from ansible_collections.stacklift.migrate.plugins.filter.ssh_hops import ssh_hops
    hostvars = dict(HOSTVARS, behind={"stacklift_ssh_jump_host": "edge"}, deeper={"stacklift_ssh_jump_host": "behind"})
    assert ssh_hops("node2", hostvars) == ["node2"]
    assert ssh_hops("deeper", hostvars) == ["edge", "behind", "deeper"]
    with pytest.raises(AnsibleFilterError, match="circle"):
        ssh_hops("a", {"a": {"stacklift_ssh_jump_host": "b"}, "b": {"stacklift_ssh_jump_host": "a"}})
