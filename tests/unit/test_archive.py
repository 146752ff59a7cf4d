"""Reading checkpoint archives the tests make, and what would block their restore."""

import copy
import io
import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import stream as ar
from ansible_collections.stacklift.migrate.plugins.module_utils._checks import restore
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import podman as pod

CONFIG = {
    "id": "f795e942e0ad", "name": "cache", "rootfsImageID": "cf2f42f1", "rootfsImageName": "localhost/stacklift/redis:latest",
    "runtime": "runc", "cgroupManager": "cgroupfs", "networkMode": "bridge",
    "newNetworks": {"shopnet": {"static_ips": ["10.89.0.3"], "interface_name": "eth0"}},
    "namedVolumes": [{"volumeName": "cachevol", "dest": "/data"}],
}
SPEC = {"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/data", "type": "bind", "source": "/var/lib/containers/storage/volumes/cachevol/_data"}]}
STATUS = {"shopnet": {"interfaces": {"eth0": {"subnets": [{"ipnet": "10.89.0.3/24", "gateway": "10.89.0.1"}],
                                              "mac_address": "de:79:51:5c:b0:6e"}}}}


def rootfs_diff(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


ROOTFS_DIFF = rootfs_diff({"etc/motd": b"hello"})


def make_archive(path, compression="none", tcp_streams=2, config=None):
    buf = io.BytesIO()
    members = {"config.dump": json.dumps(config or CONFIG).encode(), "spec.dump": json.dumps(SPEC).encode(),
               "network.status": json.dumps(STATUS).encode(), "checkpoint/pages-1.img": b"\0" * 4096,
               "checkpoint/inventory.img": b"inv", "rootfs-diff.tar": ROOTFS_DIFF, "volumes/cachevol.tar": b"v" * 512}
    for i in range(tcp_streams):
        members["checkpoint/tcp-stream-%d.img" % i] = b"t"
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    if compression == "gzip":
        import gzip
        raw = gzip.compress(raw)
    elif compression == "zstd":
        raw = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
    path.write_bytes(raw)
    return str(path)


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


def test_manifest_beside_the_archive_is_read(tmp_path):
    path = make_archive(tmp_path / "a.tar")
    ar.write_manifest(path, {"criu_version": "4.2.1", "kernel": "6.18.44", "sha256": "abc"})
    info = facts.read_archive(path)
    assert info["created_by"]["criu_version"] == "4.2.1" and info["manifest_sha256"] == "abc"
    assert oct((tmp_path / "a.tar.stacklift.json").stat().st_mode & 0o777) == "0o600"


def test_not_an_archive(tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(ar.ArchiveError, match="not a readable checkpoint archive|not a Podman checkpoint"):
        facts.read_archive(str(p))


def test_a_tar_without_config_dump_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "other.tar"
    with tarfile.open(p, "w") as tar:
        ti = tarfile.TarInfo("hello.txt")
        tar.addfile(ti, io.BytesIO(b""))
    with pytest.raises(ar.ArchiveError, match="no config.dump"):
        facts.read_archive(str(p))


def test_missing_archive(tmp_path):
    with pytest.raises(ar.ArchiveError, match="no checkpoint archive at"):
        facts.read_archive(str(tmp_path / "none.tar"))


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


def test_sha256_file(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert ar.sha256_file(str(p)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- restore_blockers --------------------------------------------------------------

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


def test_the_archive_reader_refuses_huge_or_broken_json_members(tmp_path):
    for name, data in (("huge.tar", b" " * (ar.MAX_JSON_MEMBER + 1)), ("bad.tar", b"{not json")):
        path = tmp_path / name
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("config.dump")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with pytest.raises(ar.ArchiveError, match="config.dump is"):
            facts.read_archive(str(path))


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
