"""container_restore: its decisions and error paths, with only the engine's commands faked."""

import json


from ansible_collections.stacklift.migrate.plugins.modules import container_restore

from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, make_archive, restore_host


def test_restore_refuses_a_wrong_sha256_before_anything(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar")
    runner = restore_host()
    result, failed = run_module(container_restore, {"archive": path, "sha256": "0" * 64,
                                                    "state_dir": str(tmp_path / "st")}, runner)
    assert failed and "expected " + "0" * 64 in result["msg"] and runner.calls == []


def test_restore_refuses_an_archive_that_changed_since_its_manifest(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar")
    open(path + ".stacklift.json", "w").write(json.dumps({"sha256": "f" * 64}))
    result, failed = run_module(container_restore, {"archive": path, "state_dir": str(tmp_path)}, restore_host())
    assert failed and "its manifest records" in result["msg"]


def test_restore_names_every_blocker(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar")
    runner = restore_host(**{"podman image inspect": (125, "", "Error: cf2f42f1: image not known"),
                             "podman network inspect": (125, "", "Error: unable to find network shopnet")})
    result, failed = run_module(container_restore, {"archive": path, "state_dir": str(tmp_path)}, runner)
    assert failed and len(result["blockers"]) == 2
    assert "image localhost/stacklift/redis:latest" in result["msg"] and "network 'shopnet'" in result["msg"]
    assert not runner.commands("podman container restore")


def test_restore_check_mode_then_real_then_unchanged(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar")
    args = {"archive": path, "state_dir": str(tmp_path / "st"), "tcp_established": True}
    runner = restore_host()
    result, failed = run_module(container_restore, args, runner, check_mode=True)
    assert not failed and result["changed"] and not runner.commands("podman container restore")

    restored = [{"Id": "f795e942e0ad", "Name": "cache", "State": {"Running": True, "Status": "running"},
                 "NetworkSettings": {"Networks": {"shopnet": {"IPAddress": "10.89.0.3"}}}}]
    inspected = iter([(125, "[]", "Error: no such container cache"), (0, json.dumps(restored), "")])
    runner = restore_host(**{"podman container inspect": lambda argv: next(inspected),
                             "podman container restore": (0, "{}", "")})
    result, failed = run_module(container_restore, args, runner)
    assert not failed and result["changed"] and result["container"]["ips"] == {"shopnet": ["10.89.0.3"]}
    assert "--tcp-established" in runner.commands("podman container restore")[0]

    runner = restore_host(**{"podman container inspect": restored})
    result, failed = run_module(container_restore, args, runner)
    assert not failed and not result["changed"] and not runner.commands("podman container restore")


def test_tcp_established_and_tcp_close_exclude_each_other(run_module, tmp_path):
    result, failed = run_module(container_restore, {"archive": "x", "tcp_established": True, "tcp_close": True},
                                FakeRunner())
    assert failed and "tcp_established and tcp_close exclude each other" in result["msg"]
