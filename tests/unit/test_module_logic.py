"""The modules' decisions and error paths, with only the engine's commands faked."""

import json
import os
from pathlib import Path

import pytest

from ansible_collections.stacklift.migrate.plugins.modules import (
    checkpoint_info, checkpoint_transfer, container_checkpoint, container_restore, image_sync, service_probe)

from fakes import FakeRunner
from test_archive import make_archive
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import rootfs_diff_names
from ansible_collections.stacklift.migrate.plugins.module_utils._container import checkpoint as checkpointing

HOST = {
    "podman info": {"host": {"ociRuntime": {"name": "runc", "version": "runc version 1.1.15"},
                             "cgroupVersion": "v1", "kernel": "6.18.44"}},
    "podman version": {"Client": {"Version": "5.4.2"}},
    "criu --version": (0, "Version: 4.2.1\n", ""),
    "podman top": (0, "HUSER\nroot\n", ""),
    "podman ps": [{"Id": "c1", "Names": ["db"], "State": "running"}],
    "podman volume ls": [],
}


def container(running=True, checkpointed=False, status=None):
    return [{"Id": "c1", "Name": "db", "Image": "img1", "ImageName": "localhost/stacklift/postgres:latest",
             "State": {"Running": running, "Checkpointed": checkpointed,
                       "Status": status or ("running" if running else "exited")}}]


def checkpoint_writes_archive(argv):
    make_archive(Path(argv[argv.index("--export") + 1]), "zstd")
    return 0, json.dumps({"podman_checkpoint_duration": 1000}), ""


def stopped_rootfs(tmp_path):
    """The checkpointed container's root file system: one file changed from the image, one bind mount."""
    root = tmp_path / "rootfs"
    (root / "var/lib/db").mkdir(parents=True)
    (root / "var/lib/db/table").write_bytes(b"rows changed at run time")
    (root / "etc").mkdir()
    (root / "etc/hosts").write_text("engine-managed")
    return {"podman diff": {"changed": ["/var", "/var/lib/db/table", "/etc/hosts"], "added": [], "deleted": []},
            "podman mount": (0, str(root) + "\n", ""), "podman unmount": (0, "", "")}


@pytest.fixture
def full_capabilities(monkeypatch):
    monkeypatch.setattr(checkpointing, "cap_bounding_set", lambda: int("1ffffffffff", 16))


def test_checkpoint_then_unchanged(run_module, tmp_path, full_capabilities):
    runner = FakeRunner(dict(HOST, **dict(stopped_rootfs(tmp_path), **{
        "podman container inspect": container(), "podman container checkpoint": checkpoint_writes_archive})))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path / "ck")}, runner)
    assert not failed and result["changed"], result
    entry = result["checkpoints"][0]
    assert entry["archive"] == str(tmp_path / "ck" / "db.tar.zst") and entry["size"] > 0
    # The changed file Podman's export leaves out is put into the archive; the bind mount is not.
    assert entry["rootfs_files_added"] == ["/var/lib/db/table"]
    assert "/var/lib/db/table" in rootfs_diff_names(entry["archive"])
    assert runner.commands("podman unmount")
    assert oct(os.stat(entry["archive"]).st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "ck").st_mode & 0o777) == "0o700"
    manifest = json.loads(open(entry["manifest"]).read())
    assert manifest["criu_version"] == "4.2.1" and manifest["sha256"] == entry["sha256"]
    assert not [f for f in os.listdir(tmp_path / "ck") if f.endswith(".part")]

    runner = FakeRunner(dict(HOST, **{"podman container inspect": container(running=False, checkpointed=True)}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path / "ck")}, runner)
    assert not failed and not result["changed"]
    assert not runner.commands("podman container checkpoint")


def test_check_mode_freezes_nothing(run_module, tmp_path, full_capabilities):
    runner = FakeRunner(dict(HOST, **{"podman container inspect": container()}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path)}, runner,
                                check_mode=True, diff=True)
    assert result["changed"] and not runner.commands("podman container checkpoint")
    assert result["diff"]["after"]["db"]["state"] == "checkpointed"


def test_unknown_container_is_named_with_those_that_exist(run_module, tmp_path):
    runner = FakeRunner(dict(HOST, **{"podman container inspect": (125, "[]", "Error: no such container nope")}))
    result, failed = run_module(container_checkpoint, {"name": ["nope"], "archive_dir": str(tmp_path)}, runner)
    assert failed and result["msg"] == "no container named 'nope' on this host (containers here: db)"


def test_a_stopped_container_is_refused_with_its_state(run_module, tmp_path):
    runner = FakeRunner(dict(HOST, **{"podman container inspect": container(running=False, status="exited")}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path)}, runner)
    assert failed and "container 'db' is exited, not running" in result["msg"]


def test_old_criu_is_refused_before_freezing(run_module, tmp_path, full_capabilities):
    runner = FakeRunner(dict(HOST, **{"podman container inspect": container(),
                                      "criu --version": (0, "Version: 4.1.1\n", "")}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path)}, runner)
    assert failed and "CRIU 4.1.1 cannot dump TCP sockets on Linux 6.18.44" in result["msg"]
    assert not runner.commands("podman container checkpoint")


def test_non_root_processes_without_cap_sys_resource(run_module, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpointing, "cap_bounding_set", lambda: int("000001fffeffffff", 16))
    runner = FakeRunner(dict(HOST, **{"podman container inspect": container(),
                                      "podman top": (0, "HUSER\npostgres\nroot\n", "")}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path)}, runner)
    assert failed and "processes run as postgres" in result["msg"] and "CAP_SYS_RESOURCE" in result["msg"]


def test_a_failed_rootfs_completion_keeps_the_only_archive_under_its_temporary_name(run_module, tmp_path, full_capabilities):
    answers = dict(stopped_rootfs(tmp_path), **{"podman container inspect": container(),
                                                "podman container checkpoint": checkpoint_writes_archive,
                                                "podman mount": (125, "", "Error: no space left")})
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path / "ck")},
                                FakeRunner(dict(HOST, **answers)))
    assert failed and "could not complete its root file system diff" in result["msg"] and "no space" in result["stderr"]
    # The container is stopped by now: its archive may be the only copy of its memory.
    assert os.listdir(tmp_path / "ck") == [".db.tar.zst.part"] and result["partial"].endswith(".db.tar.zst.part")


def test_a_failed_encryption_leaves_no_plaintext_when_the_engine_keeps_the_checkpoint(
        run_module, tmp_path, full_capabilities, monkeypatch):
    """Issue 20: encryption means encrypted; the disk filled while the archive was encrypted."""
    def encrypt_fails(src, dest, key):
        open(dest, "wb").write(b"half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpointing, "encrypt_file", encrypt_fails)
    answers = dict(stopped_rootfs(tmp_path), **{"podman container inspect": container(),
                                                "podman container checkpoint": checkpoint_writes_archive})
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path / "ck"), "keep": True,
                                                       "encryption_key": "vaulted passphrase"},
                                FakeRunner(dict(HOST, **answers)))
    assert failed and "could not encrypt its archive: [Errno 28]" in result["msg"], result
    assert "unencrypted archive was removed" in result["msg"] and "partial" not in result
    assert os.listdir(tmp_path / "ck") == []


def test_engine_failure_reports_stdout_stderr_and_leaves_no_part_file(run_module, tmp_path, full_capabilities):
    def fail(argv):
        open(argv[argv.index("--export") + 1], "wb").write(b"half")
        return 125, "", "Error: CRIU failed: Can't dump socket"
    runner = FakeRunner(dict(HOST, **{"podman container inspect": container(),
                                      "podman container checkpoint": fail}))
    result, failed = run_module(container_checkpoint, {"name": ["db"], "archive_dir": str(tmp_path)}, runner)
    assert failed and result["rc"] == 125 and "Can't dump socket" in result["stderr"]
    assert os.listdir(tmp_path) == []


def test_archive_takes_one_container(run_module, tmp_path):
    result, failed = run_module(container_checkpoint, {"name": ["a", "b"], "archive": str(tmp_path / "x")},
                                FakeRunner(HOST))
    assert failed and "exactly one container" in result["msg"]


# -- restore --------------------------------------------------------------------

def restore_host(**extra):
    answers = dict(HOST, **{
        "podman container inspect": (125, "[]", "Error: no such container cache"),
        "podman image inspect": [{"Id": "cf2f42f1", "RepoTags": ["localhost/stacklift/redis:latest"]}],
        "podman network inspect": [{"name": "shopnet", "subnets": [{"subnet": "10.89.0.0/24"}], "containers": {}}],
        "podman ps": [],
    })
    answers.update(extra)
    return FakeRunner(answers)


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


# -- checkpoint_info -------------------------------------------------------------

def test_checkpoint_info_reads_and_checks_the_host(run_module, tmp_path):
    path = make_archive(tmp_path / "a.tar", "gzip")
    result, failed = run_module(checkpoint_info, {"path": path}, FakeRunner())
    assert not failed and result["archive"]["container_name"] == "cache" and "restorable" not in result
    runner = restore_host(**{"podman network inspect": [{"name": "shopnet", "subnets": [{"subnet": "10.1.0.0/24"}]}]})
    result, failed = run_module(checkpoint_info, {"path": path, "check_host": True}, runner)
    assert not failed and result["restorable"] is False and "does not hold" in result["blockers"][0]


# -- service_probe ---------------------------------------------------------------

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


# -- SSH modules without paramiko --------------------------------------------------

@pytest.mark.parametrize("module,args", [
    (checkpoint_transfer, {"src": "/x", "target_host": "h"}),
    (image_sync, {"image": "x", "target_host": "h"}),
])
def test_ssh_modules_say_paramiko_is_missing(run_module, monkeypatch, module, args):
    monkeypatch.setattr(module, "HAS_PARAMIKO", False)
    result, failed = run_module(module, args, FakeRunner())
    assert failed and "paramiko" in result["msg"]


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
