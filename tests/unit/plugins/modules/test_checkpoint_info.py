"""checkpoint_info: its decisions and error paths, with only the engine's commands faked."""


from ansible_collections.stacklift.migrate.plugins.modules import checkpoint_info

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, make_archive, restore_host


def test_checkpoint_info_reads_and_checks_the_host(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar", "gzip")
    result, failed = run_module(checkpoint_info, {"path": path}, FakeRunner())
    assert not failed and result["archive"]["container_name"] == "cache" and "restorable" not in result
    runner = restore_host(**{"podman network inspect": [{"name": "shopnet", "subnets": [{"subnet": "10.1.0.0/24"}]}]})
    result, failed = run_module(checkpoint_info, {"path": path, "check_host": True}, runner)
    assert not failed and result["restorable"] is False and "does not hold" in result["blockers"][0]
