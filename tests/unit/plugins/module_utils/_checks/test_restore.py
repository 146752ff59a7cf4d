"""What would block restoring an archive on a host: every blocker named, warnings apart."""

import copy

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._checks import restore
from ansible_collections.stacklift.migrate.tests.unit.fakes import make_archive


def good_host():
    return {
        "engine": {"runtime": "runc", "criu_version": "4.2.1", "kernel": "6.18.44", "cgroup_version": "v1"},
        "image_present": True, "image_tags": ["localhost/stacklift/redis:latest"],
        "networks": {"shopnet": {"name": "shopnet", "subnets": ["10.89.0.0/24"], "containers": {}}},
        "containers": [], "volumes": [],
    }


@pytest.fixture
def info(tmp_path):
    return facts.read_archive(make_archive(tmp_path / "a.tar"))


def test_a_good_host_has_no_blockers(info):
    assert restore.restore_blockers(info, good_host()) == ([], [])


def test_ignore_static_ip_and_volumes_lift_those_checks(info):
    host = good_host()
    host["networks"]["shopnet"]["subnets"] = ["10.99.0.0/24"]
    host["volumes"] = ["cachevol"]
    assert restore.restore_blockers(info, host, ignore_static_ip=True, ignore_volumes=True)[0] == []


def test_another_name_frees_the_old_one(info):
    host = good_host()
    host["containers"].append({"id": "f795e942e0ad", "name": "cache", "state": "exited"})
    blockers = restore.restore_blockers(info, host, name="cache-2")[0]
    assert blockers == []


def test_older_criu_and_other_cgroup_version_only_warn(info):
    info = copy.deepcopy(info)
    info["created_by"].update(criu_version="4.2.1", cgroup_version="v2")
    host = good_host()
    host["engine"]["criu_version"] = "4.2.0"
    blockers, warnings = restore.restore_blockers(info, host)
    assert blockers == [] and len(warnings) == 2


@pytest.mark.parametrize("change,expected", [
    (lambda h: h.update(image_present=False), "image localhost/stacklift/redis:latest (sha256:cf2f42f1) is not on this host"),
    (lambda h: h["networks"].update(shopnet=None), "network 'shopnet' is not on this host"),
    (lambda h: h["networks"]["shopnet"].update(subnets=["10.99.0.0/24"]),
     "subnet 10.99.0.0/24, which does not hold the container's address 10.89.0.3"),
    (lambda h: h["networks"]["shopnet"]["containers"].update(x={"name": "intruder", "ips": ["10.89.0.3"]}),
     "address 10.89.0.3 on network 'shopnet' is taken by container intruder"),
    (lambda h: h["containers"].append({"id": "zzz", "name": "cache", "state": "running"}),
     "the name 'cache' is taken by container zzz"),
    (lambda h: h["containers"].append({"id": "f795e942e0ad", "name": "other", "state": "exited"}),
     "holds this archive's container ID"),
    (lambda h: h.update(volumes=["cachevol"]), "volume 'cachevol' already exists here"),
    (lambda h: h["engine"].update(runtime="crun"), "made with the runc runtime, this host's engine uses crun"),
    (lambda h: h["engine"].update(criu_version="4.1.1"), "CRIU 4.1.1 cannot dump TCP sockets"),
])
def test_each_blocker_is_named(info, change, expected):
    host = good_host()
    change(host)
    blockers, _warnings = restore.restore_blockers(info, host)
    assert len(blockers) == 1 and expected in blockers[0], blockers
