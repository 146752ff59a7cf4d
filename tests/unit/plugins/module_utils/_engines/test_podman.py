"""The podman commands the engine builds, and how it reads podman's answers."""

import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import EngineError, NotFound
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import stream as ar
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import podman as pod
from ansible_collections.stacklift.migrate.tests.unit.fakes import ROOTFS_DIFF, FakeRunner, make_archive


STATS = {"podman_checkpoint_duration": 333155, "container_statistics": [
    {"Id": "abc", "runtime_checkpoint_duration": 291709,
     "criu_statistics": {"freezing_time": 101374, "frozen_time": 163451, "pages_written": 737}}]}


def test_checkpoint_command_carries_every_flag():
    runner = FakeRunner({"podman container checkpoint": (0, json.dumps(STATS), "")})
    stats = PodmanEngine(runner).checkpoint("db", "/a/db.tar.zst", compression="gzip", tcp="established",
                                            file_locks=True, keep=True, leave_running=True, ignore_volumes=True,
                                            ignore_rootfs=True)
    assert runner.calls == [["podman", "container", "checkpoint", "--export", "/a/db.tar.zst", "--compress",
                             "gzip", "--print-stats", "--file-locks", "--ignore-rootfs", "--ignore-volumes", "--keep",
                             "--leave-running", "--tcp-established", "--", "db"]]
    assert stats == {"podman_checkpoint_duration": 333155, "runtime_checkpoint_duration": 291709,
                     "freezing_time": 101374, "frozen_time": 163451, "pages_written": 737}


def test_checkpoint_without_options_adds_no_flags():
    runner = FakeRunner({"podman container checkpoint": (0, "{}", "")})
    PodmanEngine(runner).checkpoint("db", "/a/db.tar")
    assert runner.calls[0][-5:] == ["--compress", "zstd", "--print-stats", "--", "db"]


def test_a_name_is_never_taken_for_an_option():
    runner = FakeRunner({"podman container checkpoint": (0, "{}", ""), "podman rm": (0, "", ""),
                         "podman container inspect": (0, "[{}]", "")})
    engine = PodmanEngine(runner)
    engine.checkpoint("-l", "/a/x.tar")
    engine.remove_force("-l")
    engine.container("-l")
    assert all(call[call.index("--") + 1] == "-l" for call in runner.calls), runner.calls


def test_unknown_compression_is_refused():
    with pytest.raises(EngineError, match="compression must be one of"):
        PodmanEngine(FakeRunner()).checkpoint("db", "/a", compression="xz")


def test_restore_command():
    runner = FakeRunner({"podman container restore": (0, "{}", "")})
    PodmanEngine(runner).restore("/a/db.tar.zst", name="db2", publish=["8080:80", "5432"], tcp="established",
                                 ignore_static_mac=True, file_locks=True)
    assert runner.calls[0] == ["podman", "container", "restore", "--import", "/a/db.tar.zst", "--print-stats",
                               "--name", "db2", "--publish", "8080:80", "--publish", "5432", "--file-locks",
                               "--ignore-static-mac", "--tcp-established"]


def test_missing_container_is_not_found():
    runner = FakeRunner({"podman container inspect": (125, "[]", "Error: no such container nope\n")})
    with pytest.raises(NotFound, match="no container named 'nope'"):
        PodmanEngine(runner).container("nope")


def test_many_containers_are_inspected_in_one_call_the_missing_ones_none():
    db = {"Id": "abc123", "Name": "db", "State": {"Running": True}}
    app = {"Id": "def456", "Name": "app", "State": {"Running": False}}
    runner = FakeRunner({"podman container inspect": (125, json.dumps([db, app]), "Error: no such container nope\n")})
    found = PodmanEngine(runner).containers_named(["db", "nope", "def4"])
    assert found == {"db": db, "nope": None, "def4": app}  # a name, or an ID's start as podman takes it
    assert runner.calls == [["podman", "container", "inspect", "--", "db", "nope", "def4"]]
    # any other error is one
    runner = FakeRunner({"podman container inspect": (125, "", "Error: database is locked\n")})
    with pytest.raises(EngineError, match="database is locked"):
        PodmanEngine(runner).containers_named(["db"])
    assert PodmanEngine(FakeRunner()).containers_named([]) == {}


def test_other_failures_keep_podman_output():
    runner = FakeRunner({"podman container checkpoint": (125, "", "Error: CRIU checkpoint failed\nlast line\n")})
    with pytest.raises(EngineError) as exc:
        PodmanEngine(runner).checkpoint("db", "/a")
    assert exc.value.rc == 125 and "CRIU checkpoint failed" in exc.value.stderr and "last line" in exc.value.msg


def test_info_reads_versions():
    runner = FakeRunner({
        "podman info": {"host": {"ociRuntime": {"name": "runc", "version": "runc version 1.1.15+ds1\ncommit: x"},
                                 "cgroupVersion": "v1", "cgroupManager": "cgroupfs", "kernel": "6.18.44",
                                 "arch": "amd64"}},
        "podman version": {"Client": {"Version": "5.4.2"}},
        "criu --version": (0, "Version: 4.2.1\n", ""),
    })
    info = PodmanEngine(runner).info()
    assert info == {"engine": "podman", "engine_version": "5.4.2", "runtime": "runc", "runtime_version": "1.1.15",
                    "cgroup_version": "v1", "cgroup_manager": "cgroupfs", "kernel": "6.18.44", "arch": "amd64",
                    "criu_version": "4.2.1"}


def test_missing_criu_gives_no_version():
    runner = FakeRunner({"criu --version": (127, "", "criu: not found")})
    assert PodmanEngine(runner).criu_version() is None


def test_network_lists_addresses_of_its_containers():
    runner = FakeRunner({"podman network inspect": [{
        "name": "shopnet", "subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}],
        "containers": {"c1": {"name": "cache", "interfaces": {"eth0": {"subnets": [{"ipnet": "10.89.0.3/24"}]}}}}}]})
    assert PodmanEngine(runner).network("shopnet") == {
        "name": "shopnet", "subnets": ["10.89.0.0/24"], "containers": {"c1": {"name": "cache", "ips": ["10.89.0.3"]}}}


def test_image_streams_use_docker_archive_to_keep_the_id():
    e = PodmanEngine(FakeRunner(), binary="/usr/bin/podman")
    assert e.image_save_command("x") == ["/usr/bin/podman", "save", "--format", "docker-archive", "-o",
                                         "/dev/stdout", "x"]
    assert e.image_load_command() == ["/usr/bin/podman", "load", "-q"]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_reads_every_compression(tmp_path, compression):
    info = facts.read_archive(make_archive(tmp_path / "a.tar", compression))
    assert info["compression"] == compression
    assert info["container_name"] == "cache" and info["container_id"] == "f795e942e0ad"
    assert info["image_id"] == "sha256:cf2f42f1" and info["image_name"] == "localhost/stacklift/redis:latest"
    assert info["networks"] == {"shopnet": {"static_ips": ["10.89.0.3"], "ips": ["10.89.0.3/24"],
                                            "mac": "de:79:51:5c:b0:6e"}}
    assert info["volumes"] == ["cachevol"]
    assert info["mounts"] == [{"destination": "/data", "type": "bind",
                               "source": "/var/lib/containers/storage/volumes/cachevol/_data"}]
    assert info["tcp_connections_saved"] == 2
    assert info["sizes"]["memory_pages"] == 4096 and info["sizes"]["rootfs_diff"] == len(ROOTFS_DIFF)
    assert info["sizes"]["volumes"] == 512
    assert info["created_by"]["criu_version"] is None   # no manifest beside it


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_files_the_engine_left_out_are_added_to_the_rootfs_diff(tmp_path, compression):
    path = make_archive(tmp_path / "a.tar", compression)
    root = tmp_path / "root"
    (root / "var/lib/db").mkdir(parents=True)
    (root / "var/lib/db/table").write_bytes(b"rows")
    (root / "var/lib/db/link").symlink_to("table")
    (root / "etc").mkdir()
    (root / "etc/motd").write_text("hello")
    in_diff = pod.rootfs_diff_names(path)
    assert in_diff == {"/etc/motd"}
    gaps = pod.rootfs_gaps(["/var", "/var/lib/db", "/var/lib/db/table", "/var/lib/db/link", "/etc/motd",
                           "/etc/hosts", "/gone"], in_diff, str(root))
    assert gaps == ["/var/lib/db/link", "/var/lib/db/table"]
    before = facts.read_archive(path)
    pod.add_rootfs_files(path, str(root), gaps)
    after = facts.read_archive(path)
    assert after["compression"] == compression and after["tcp_connections_saved"] == 2
    assert after["container_name"] == before["container_name"] and after["networks"] == before["networks"]
    assert pod.rootfs_diff_names(path) == {"/etc/motd", "/var/lib/db/table", "/var/lib/db/link"}
    with tarfile.open(path if compression == "none" else fileobj_of(path, compression)) as tar:
        inner = tarfile.open(fileobj=tar.extractfile("rootfs-diff.tar"))
        assert inner.extractfile("var/lib/db/table").read() == b"rows"
        assert inner.getmember("var/lib/db/link").issym()


def fileobj_of(path, compression):
    data = open(path, "rb").read()
    if compression == "gzip":
        import gzip
        data = gzip.decompress(data)
    else:
        data = subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, check=True).stdout
    tmp = path + ".plain"
    open(tmp, "wb").write(data)
    return tmp


def test_rootfs_paths_resolve_inside_the_containers_root(tmp_path):
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "data").symlink_to("/etc")            # absolute: the container's /etc, not the host's
    (root / "srv" / "up").symlink_to("../../..")  # ".." stops at the container's root
    (root / "srv" / "loop").symlink_to("loop")
    assert pod.in_root(str(root), "/data/passwd") == str(root / "etc" / "passwd")
    assert pod.in_root(str(root), "/srv/up/etc/passwd") == str(root / "etc" / "passwd")
    assert pod.in_root(str(root), "/data") == str(root / "data")  # the last component stays a link
    with pytest.raises(ar.ArchiveError, match="too many symlinks"):
        pod.in_root(str(root), "/srv/loop/x")


def test_the_rootfs_rewrite_is_private_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w"):
        pass
    modes = []
    real_open = pod._open_writer

    def spy(p, compression):
        modes.append(oct(os.stat(p).st_mode & 0o777) if os.path.exists(p) else None)
        out, close = real_open(p, compression)
        modes.append(oct(os.stat(p).st_mode & 0o777))
        return out, close
    monkeypatch.setattr(pod, "_open_writer", spy)
    with pytest.raises(OSError):
        pod.add_rootfs_files(str(path), str(tmp_path / "no-root"), ["/missing"])
    assert modes == [None, "0o600"]
    assert not os.path.exists(str(path) + ".rootfs.tmp")
