"""container_checkpoint: its decisions and error paths, with only the engine's commands faked."""

import json
import os
from pathlib import Path

import pytest

from ansible_collections.stacklift.migrate.plugins.modules import container_checkpoint

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import rootfs_diff_names
from ansible_collections.stacklift.migrate.plugins.module_utils._container import checkpoint as checkpointing
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, HOST, make_archive


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
