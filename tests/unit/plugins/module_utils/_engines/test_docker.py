"""The Docker engine over a fake Engine API (the one thing faked): its archive, its restore, its workarounds."""

import json
import os
import stat
import tarfile

import pytest
from docker.errors import APIError, NotFound as DockerNotFound

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import stream
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import docker as dk
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import docker_archive as dka
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import selection
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import EngineError, NotFound
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner


IMAGE_ID = "sha256:" + "ab" * 32


class Response:
    def __init__(self, status, reason=""):
        self.status_code, self.reason = status, reason


def api_error(status, explanation):
    cls = DockerNotFound if status == 404 else APIError
    return cls("%d error" % status, response=Response(status), explanation=explanation)


class FakeAPI:
    """docker.APIClient as the engine calls it: answers from a dict, records every call."""

    def __init__(self, root, containers=None, fail=None):
        self.root = root
        self.calls = []
        self.made = {}
        self.by_name = dict(containers or {})
        self.fail = dict(fail or {})   # call name -> list of exceptions to raise, one per call
        self.volumes_made = {}

    def _maybe_fail(self, name):
        errors = self.fail.get(name) or []
        if errors:
            raise errors.pop(0)

    # raw endpoints
    def _url(self, path):
        return path

    def _post_json(self, url, data=None, params=None):
        self.calls.append(("post", url, data, params))
        self._maybe_fail("post " + url.rsplit("/", 1)[-1])
        if url.endswith("/checkpoints"):
            cid = url.split("/")[2]
            d = os.path.join(self.root, "containers", cid, "checkpoints", data["CheckpointID"])
            os.makedirs(d)
            for name, content in (("pages-1.img", b"P" * 4096), ("inventory.img", b"I"), ("tcp-stream-1.img", b"T")):
                with open(os.path.join(d, name), "wb") as f:
                    f.write(content)
        return {}

    def _post(self, url, params=None):
        return self._post_json(url, None, params)

    def _delete(self, url, params=None):
        self.calls.append(("delete", url, None, params))
        self._maybe_fail("delete")
        return {}

    def _get(self, url, params=None):
        self.calls.append(("get", url, None, params))
        return []

    def _result(self, res, json=False):
        return res

    # SDK methods
    def info(self):
        return {"DefaultRuntime": "runc", "CgroupVersion": "1", "KernelVersion": "6.18.44", "Driver": "overlay2",
                "DockerRootDir": self.root, "ExperimentalBuild": True, "CgroupDriver": "cgroupfs"}

    def version(self):
        return {"Version": "26.1.5", "ApiVersion": "1.45", "Experimental": True}

    def inspect_container(self, name):
        self.calls.append(("inspect", name))
        if name in self.made:
            return self.made[name]
        name = next((n for n, c in self.by_name.items() if c["Id"] == name), name)
        if name not in self.by_name:
            raise api_error(404, "No such container: %s" % name)
        return self.by_name[name]

    def top(self, name, ps_args=None):
        return {"Titles": ["PID", "USER"], "Processes": [["10", "root"], ["11", "postgres"]]}

    def create_volume(self, name, driver=None, labels=None):
        path = os.path.join(self.root, "volumes", name, "_data")
        os.makedirs(path)
        self.volumes_made[name] = path
        self.calls.append(("create_volume", name))

    def inspect_volume(self, name):
        return {"Name": name, "Mountpoint": self.volumes_made[name]}

    def create_container_from_config(self, body, name=None):
        self.calls.append(("create", name, body))
        self._maybe_fail("create")
        cid = "f" * 64
        upper = os.path.join(self.root, "overlay2", "new", "diff")
        os.makedirs(upper)
        self.made[cid] = {"Id": cid, "Name": "/" + name, "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": upper}},
                          "Config": body, "State": {"Running": False}}
        return {"Id": cid}

    def remove_container(self, name, force=False):
        self.calls.append(("remove", name, force))

    def remove_volume(self, name, force=False):
        self.calls.append(("remove_volume", name))

    def inspect_image(self, ref):
        if ref in ("localhost/stacklift/redis:latest", IMAGE_ID):
            return {"Id": IMAGE_ID, "RepoTags": ["localhost/stacklift/redis:latest"]}
        raise api_error(404, "No such image: %s" % ref)


def old_container(tmp_path, cid="a" * 64):
    """A checkpointable container: an overlay2 upper dir with a change, a deletion and an opaque dir; a volume."""
    upper = tmp_path / "src-upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "added.conf").write_text("new\n")
    (upper / ".hidden").write_text("dot\n")
    vol = tmp_path / "vol-data"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "dump.rdb").write_bytes(b"R" * 100)
    return {
        "Id": cid, "Name": "/cache", "Image": IMAGE_ID,
        "Config": {"Image": "localhost/stacklift/redis:latest", "Cmd": ["redis-server"], "Env": ["A=1"],
                   "Hostname": cid[:12], "MacAddress": "02:42:0a:59:07:05"},
        "HostConfig": {"NetworkMode": "dnet", "Binds": ["dvol:/data", "/srv/conf:/conf"],
                       "Annotations": {"org.criu.config": "/etc/criu/x.conf"}},
        "NetworkSettings": {"Networks": {"dnet": {"IPAddress": "10.89.7.5", "IPPrefixLen": 24,
                                                  "IPAMConfig": {"IPv4Address": "10.89.7.5"},
                                                  "MacAddress": "02:42:0a:59:07:05", "Aliases": ["cache", cid[:12]]}}},
        "Mounts": [{"Type": "volume", "Name": "dvol", "Source": str(vol), "Destination": "/data", "Driver": "local"},
                   {"Type": "bind", "Source": "/srv/conf", "Destination": "/conf"}],
        "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": str(upper)}},
        "State": {"Running": True, "Pid": 1234},
    }


@pytest.fixture
def whiteouts(monkeypatch):
    """The overlay whiteouts in the source upper dir: char devices 0/0 as tar sees them (making real
    ones needs CAP_MKNOD), and os.mknod recorded on restore."""
    made = []
    real_add = tarfile.TarFile.add

    def add(self, name, arcname=None, recursive=True, *, filter=None):
        real_add(self, name, arcname, recursive, filter=filter)
        if arcname == "etc" and filter is not None:
            info = tarfile.TarInfo("etc/issue")
            info.type = tarfile.CHRTYPE
            info.devmajor = info.devminor = 0
            assert filter(info) is None

    monkeypatch.setattr(tarfile.TarFile, "add", add)
    monkeypatch.setattr(os, "mknod", lambda path, mode, dev: made.append((path, stat.S_ISCHR(mode), dev)))
    return made


@pytest.fixture(autouse=True)
def no_ctr(monkeypatch):
    """containerd's ctr is not on the host unless a test says so."""
    monkeypatch.setattr(dk, "_which_ctr", lambda: None)


def engine(tmp_path, **kw):
    api = FakeAPI(str(tmp_path / "docker-root"), **kw)
    return dk.DockerEngine(FakeRunner({"criu --version": (0, "Version: 4.2.1", ""),
                                       "runc --version": (0, "runc version 1.1.15", "")}), api=api), api


def members(path):
    with stream.TarStream(path) as tar:
        return [m.name for m in tar]


def test_checkpoint_writes_a_self_describing_archive_in_restore_order(tmp_path, whiteouts):
    c = old_container(tmp_path)
    e, api = engine(tmp_path, containers={"cache": c})
    path = str(tmp_path / "cache.tar.zst")
    stats = e.checkpoint("cache", path, tcp="established", keep=False)
    assert ("post", "/containers/%s/checkpoints" % c["Id"], {"CheckpointID": "stacklift", "Exit": True}, None) \
        in api.calls
    assert stats["runtime_checkpoint_duration"] >= 0 and "archive_duration" in stats
    names = members(path)
    assert names[:5] == ["container.json", "volumes/dvol.tar", "rootfs-diff.tar", "deleted.files", "opaque.dirs"]
    assert sorted(names[5:]) == ["checkpoint/inventory.img", "checkpoint/pages-1.img", "checkpoint/tcp-stream-1.img"]
    # not kept: the CRIU images leave the container's directory once they are in the archive, which it names
    cpdir = os.path.join(api.root, "containers", c["Id"], "checkpoints", "stacklift")
    assert os.listdir(cpdir) == ["stacklift-archived"]
    api.by_name["cache"]["State"] = {"Running": False, "StartedAt": "2020-01-01T00:00:00.5Z"}
    assert e.container("cache")["State"]["Checkpointed"]
    with pytest.raises(EngineError, match="not kept"):
        e.restore_in_place("cache")
    api.by_name["cache"]["State"] = {"Running": False, "StartedAt": "2999-01-01T00:00:00Z"}
    assert not e.container("cache")["State"]["Checkpointed"]
    info = facts.read_archive(path)
    assert info["engine"] == "docker" and info["container_name"] == "cache" and info["image_id"] == IMAGE_ID
    assert info["networks"] == {"dnet": {"static_ips": ["10.89.7.5"], "ips": ["10.89.7.5/24"],
                                         "mac": "02:42:0a:59:07:05"}}
    assert info["volumes"] == ["dvol"] and info["tcp_connections_saved"] == 1
    assert info["sizes"]["memory_pages"] == 4096
    assert [m["destination"] for m in info["mounts"]] == ["/data", "/conf"]


def test_checkpoint_refuses_a_container_without_overlay2_before_freezing(tmp_path):
    c = old_container(tmp_path)
    c["GraphDriver"] = {"Name": "vfs", "Data": {}}
    e, api = engine(tmp_path, containers={"cache": c})
    with pytest.raises(EngineError, match="overlay2"):
        e.checkpoint("cache", str(tmp_path / "x.tar"))
    assert not [call for call in api.calls if call[0] == "post"]


def test_restore_makes_the_same_container_fills_it_and_starts_it_from_the_checkpoint(tmp_path, whiteouts):
    c = old_container(tmp_path)
    e, api = engine(tmp_path, containers={"cache": c})
    path = str(tmp_path / "cache.tar")
    e.checkpoint("cache", path, compression="none", keep=True)
    e2, api2 = engine(tmp_path / "target")
    stats = e2.restore(path)
    name, body = [call[1:] for call in api2.calls if call[0] == "create"][0]
    assert name == "cache" and body["Image"] == "localhost/stacklift/redis:latest"
    assert body["Cmd"] == ["redis-server"] and body["Hostname"] == c["Id"][:12] and "MacAddress" not in body
    assert body["HostConfig"]["Annotations"] == {"org.criu.config": "/etc/criu/x.conf"}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"dnet": {
        "Aliases": ["cache"], "IPAMConfig": {"IPv4Address": "10.89.7.5"}, "MacAddress": "02:42:0a:59:07:05"}}}
    assert ("create_volume", "dvol") in api2.calls
    new = api2.made["f" * 64]
    upper = new["GraphDriver"]["Data"]["UpperDir"]
    assert open(os.path.join(upper, "etc", "added.conf")).read() == "new\n"
    assert open(os.path.join(upper, ".hidden")).read() == "dot\n"
    assert whiteouts == [(os.path.join(upper, "etc", "issue"), True, os.makedev(0, 0))]
    assert open(os.path.join(api2.volumes_made["dvol"], "sub", "dump.rdb"), "rb").read() == b"R" * 100
    cpdir = os.path.join(api2.root, "containers", "f" * 64, "checkpoints", "stacklift")
    assert sorted(os.listdir(cpdir)) == ["inventory.img", "pages-1.img", "tcp-stream-1.img"]
    assert ("post", "/containers/%s/start" % ("f" * 64), None, {"checkpoint": "stacklift"}) in api2.calls
    assert stats["runtime_restore_duration"] >= 0


def test_restore_retries_containerds_already_exists_race_only(tmp_path, whiteouts):
    c = old_container(tmp_path)
    e = engine(tmp_path, containers={"cache": c})[0]
    path = str(tmp_path / "cache.tar")
    e.checkpoint("cache", path, compression="gzip")
    race = "failed to upload checkpoint to containerd: commit failed: content sha256:1: already exists"
    e2, api2 = engine(tmp_path / "t1", fail={"post start": [api_error(500, race), api_error(500, race)]})
    e2.restore(path)
    assert len([x for x in api2.calls if x[0] == "post" and x[1].endswith("/start")]) == 3

    e3, api3 = engine(tmp_path / "t2", fail={"post start": [api_error(500, "criu failed: type RESTORE")]})
    with pytest.raises(EngineError, match="criu failed"):
        e3.restore(path)
    # what the failed restore made is gone again: the container and the volume
    assert ("remove", "f" * 64, True) in api3.calls and ("remove_volume", "dvol") in api3.calls


def test_restore_with_another_image_name_uses_the_id_and_can_drop_addresses(tmp_path, whiteouts):
    c = old_container(tmp_path)
    c["Config"]["Image"] = "elsewhere/redis:7"
    body = dk.create_body(c, publish=["127.0.0.1:8080:80"], ignore_static_ip=True, ignore_static_mac=True,
                          ignore_volumes=True, image=IMAGE_ID)
    assert body["Image"] == IMAGE_ID
    assert body["NetworkingConfig"]["EndpointsConfig"]["dnet"] == {"Aliases": ["cache"]}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert body["HostConfig"]["Binds"] == ["/srv/conf:/conf"]


def test_tcp_close_is_refused_with_the_way_round(tmp_path):
    e = engine(tmp_path)[0]
    with pytest.raises(EngineError, match="tcp-close in the container's CRIU configuration"):
        e.restore("/nonexistent", tcp="close")


def nested(tmp_path, entries):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as t:
        for name, kind, target in entries:
            info = tarfile.TarInfo(name)
            if kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
                t.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, target
                t.addfile(info)
            else:
                data = b"x"
                info.size = 1
                import io
                t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("entries,says", [
    ([("../escape", "file", None)], "outside"),
    ([("/abs/file", "file", None)], None),
    ([("data", "sym", "/etc"), ("data/passwd", "file", None)], "symlink leads it outside"),
    ([("link", "hard", "../../etc/passwd")], "outside"),
])
def test_nested_tars_never_write_outside_their_directory(tmp_path, entries, says):
    dest = tmp_path / "dest"
    dest.mkdir()
    path = nested(tmp_path, entries)
    if says is None:   # a leading '/' is taken off, as tar does: it lands inside
        with open(path, "rb") as f:
            dka.untar(f, str(dest))
        assert (dest / "abs" / "file").exists()
        return
    with open(path, "rb") as f, pytest.raises(stream.ArchiveError, match=says):
        dka.untar(f, str(dest))
    assert not (tmp_path / "escape").exists()


def test_deletions_stay_inside_the_upper_dir(tmp_path):
    with pytest.raises(stream.ArchiveError, match="outside"):
        dka.apply_deletions(str(tmp_path), ["/../../etc/passwd"], [])


def test_a_symlink_then_a_file_of_the_same_name_replaces_the_symlink_and_leaves_the_host_file(tmp_path):
    """Issue 20: 'x -> /host/file', then a regular 'x': tar's own extraction wrote through the link."""
    dest, host_file = tmp_path / "dest", tmp_path / "host-file"
    dest.mkdir()
    host_file.write_text("the host's")
    path = nested(tmp_path, [("x", "sym", str(host_file)), ("x", "file", None)])
    with open(path, "rb") as f:
        dka.untar(f, str(dest))
    assert host_file.read_text() == "the host's"
    assert not (dest / "x").is_symlink() and (dest / "x").read_bytes() == b"x"


def test_a_hard_link_through_a_symlinked_directory_is_refused(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "etc"
    dest.mkdir()
    outside.mkdir()
    (outside / "shadow").write_text("secret")
    path = nested(tmp_path, [("d", "sym", str(outside)), ("h", "hard", "d/shadow")])
    with open(path, "rb") as f, pytest.raises(stream.ArchiveError, match="'d/shadow' .*symlink leads it outside"):
        dka.untar(f, str(dest))
    # a hard link to a symlink that leads out (os.link would follow it)
    path = nested(tmp_path, [("s", "sym", str(outside / "shadow")), ("h", "hard", "s")])
    with open(path, "rb") as f, pytest.raises(stream.ArchiveError, match="hard link's source 's' is outside"):
        dka.untar(f, str(dest))
    assert not (dest / "h").exists() and (outside / "shadow").stat().st_nlink == 1


def test_deletions_and_opaque_dirs_never_act_through_a_symlink(tmp_path):
    upper, outside = tmp_path / "upper", tmp_path / "etc"
    upper.mkdir()
    outside.mkdir()
    (outside / "passwd").write_text("root")
    (upper / "data").symlink_to(outside)
    with pytest.raises(stream.ArchiveError, match="symlink leads it outside"):
        dka.apply_deletions(str(upper), ["/data/passwd"], [])
    with pytest.raises(stream.ArchiveError, match="symlink leads it outside"):
        dka.apply_deletions(str(upper), [], ["/data/sub"])
    assert (outside / "passwd").read_text() == "root" and not (outside / "sub").exists()
    # a symlink in the very place of a deleted file is replaced by the whiteout, its target untouched
    dka.apply_deletions(str(upper), ["/data"], [])
    assert not (upper / "data").is_symlink() and os.major((upper / "data").lstat().st_rdev) == 0
    assert (outside / "passwd").read_text() == "root"


def crafted_archive(tmp_path, members):
    """A Docker archive of MEMBERS [(name, bytes or None for a directory)] as written, uncompressed."""
    import io
    path = tmp_path / "crafted.tar"
    with tarfile.open(path, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return str(path)


def test_a_checkpoint_member_that_climbs_out_is_refused_before_it_is_written(tmp_path):
    e, _api = engine(tmp_path, containers={})
    cpdir = tmp_path / "cp"
    cpdir.mkdir()
    archive = crafted_archive(tmp_path, [("checkpoint/../../escaped", b"x")])
    with tarfile.open(archive) as tar, pytest.raises(stream.ArchiveError, match="would land outside"):
        m = tar.getmembers()[0]
        dka.extract_file(tar, m, str(cpdir), dka.member_name(m.name)[len("checkpoint/"):])
    assert not (tmp_path / "escaped").exists() and os.listdir(cpdir) == []


def test_container_json_and_deleted_files_are_read_within_a_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "MAX_JSON_MEMBER", 1000)
    archive = crafted_archive(tmp_path, [("deleted.files", b"[" + b'"/a",' * 400 + b'"/b"]')])
    with tarfile.open(archive) as tar, pytest.raises(stream.ArchiveError, match="not a JSON document of at most 1000"):
        dka.json_list(tar, tar.getmembers()[0], archive)
    archive = crafted_archive(tmp_path, [("deleted.files", b'{"a": 1}')])
    with tarfile.open(archive) as tar, pytest.raises(stream.ArchiveError, match="not a list of paths"):
        dka.json_list(tar, tar.getmembers()[0], archive)


def test_inspect_data_is_read_as_podmans(tmp_path):
    e, api = engine(tmp_path, containers={"cache": old_container(tmp_path)})
    c = e.container("cache")
    assert c["Name"] == "cache" and c["ImageName"] == "localhost/stacklift/redis:latest"
    assert "Checkpointed" not in c["State"]
    api.by_name["cache"]["State"] = {"Running": False, "Status": "exited"}
    assert e.container("cache")["State"]["Checkpointed"] is False
    e.checkpoint("cache", str(tmp_path / "a.tar"), compression="none", keep=True)
    assert e.container("cache")["State"]["Checkpointed"] is True
    assert sorted(os.listdir(str(tmp_path / "docker-root" / "containers" / ("a" * 64) / "checkpoints" / "stacklift"))) \
        == ["inventory.img", "pages-1.img", "tcp-stream-1.img"]
    with pytest.raises(NotFound, match="no container named 'nope'"):
        e.container("nope")
    assert e.container_users("cache") == ["root", "postgres"]
    info = e.info()
    assert info["engine"] == "docker" and info["experimental"] and info["storage_driver"] == "overlay2"
    assert info["criu_version"] == "4.2.1" and info["runtime_version"] == "1.1.15"


def test_selection_gives_docker_when_asked_or_when_it_is_all_there_is():
    assert isinstance(selection.select_engine("docker", FakeRunner(), which=lambda b: None), dk.DockerEngine)
    only_docker = selection.select_engine("auto", FakeRunner(), which=lambda b: "/usr/bin/dockerd" if b == "dockerd"
                                          else None)
    assert only_docker.name == "docker"
    assert isinstance(selection.make_engine("docker", FakeRunner(), remote=True), dk.DockerRemote)


def test_the_remote_engine_reads_images_over_the_cli():
    runner = FakeRunner({"docker image inspect": (1, "", "Error: No such image: x"),
                         "docker tag": (0, "", "")})
    remote = dk.DockerRemote(runner)
    with pytest.raises(NotFound):
        remote.image("x")
    remote.tag(IMAGE_ID, "localhost/x:1")
    assert runner.calls[-1] == ["docker", "tag", IMAGE_ID, "localhost/x:1"]
    assert json.loads(json.dumps(remote.image_load_command())) == ["docker", "load", "-q"]


def ctr_dump(container):
    """ctr task checkpoint as runc does it: the images written straight into --image-path; the task exits."""
    def dump(argv):
        path = argv[argv.index("--image-path") + 1]
        for name in ("pages-1.img", "inventory.img"):
            with open(os.path.join(path, name), "wb") as f:
                f.write(b"C")
        container["State"] = {"Running": False, "Status": "exited"}
        return 0, "", ""
    return dump


def test_the_dump_goes_straight_to_disk_through_containerd_when_it_can(tmp_path, whiteouts, monkeypatch):
    monkeypatch.setattr(dk, "_which_ctr", lambda: "/usr/bin/ctr")
    c = old_container(tmp_path)
    e, api = engine(tmp_path, containers={"cache": c})
    e.runner.answers["ctr"] = ctr_dump(c)
    stats = e.checkpoint("cache", str(tmp_path / "a.tar"), compression="none", keep=True)
    argv = e.runner.commands("ctr")[0]
    cpdir = os.path.join(api.root, "containers", c["Id"], "checkpoints", "stacklift")
    assert argv[:5] == ["/usr/bin/ctr", "--namespace", "moby", "task", "checkpoint"]
    assert argv[argv.index("--image-path") + 1] == cpdir and argv[-2:] == ["--exit", c["Id"]]
    assert stats["checkpoint_path"] == "containerd" and not [x for x in api.calls if x[0] == "post"]
    assert "checkpoint/pages-1.img" in members(str(tmp_path / "a.tar"))


def test_a_container_with_a_restart_policy_is_dumped_through_dockers_api(tmp_path, whiteouts, monkeypatch):
    # dockerd would restart it when its task exits under it: a second copy of the service
    monkeypatch.setattr(dk, "_which_ctr", lambda: "/usr/bin/ctr")
    c = old_container(tmp_path)
    c["HostConfig"]["RestartPolicy"] = {"Name": "unless-stopped"}
    e, api = engine(tmp_path, containers={"cache": c})
    stats = e.checkpoint("cache", str(tmp_path / "a.tar"), compression="none")
    assert stats["checkpoint_path"] == "engine-api" and not e.runner.commands("ctr")


def test_a_failed_dump_says_what_criu_said_and_is_not_retried_another_way(tmp_path, monkeypatch):
    monkeypatch.setattr(dk, "_which_ctr", lambda: "/usr/bin/ctr")
    c = old_container(tmp_path)
    e, api = engine(tmp_path, containers={"cache": c})

    def fail(argv):
        work = argv[argv.index("--work-path") + 1]
        with open(os.path.join(work, "dump.log"), "w") as f:
            f.write("(00.1) Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider using --tcp-established\n")
        return 1, "", "ctr: runc did not terminate successfully: exit status 1"
    e.runner.answers["ctr"] = fail
    with pytest.raises(EngineError, match="consider using --tcp-established"):
        e.checkpoint("cache", str(tmp_path / "a.tar"))
    assert not [x for x in api.calls if x[0] == "post"]
    # containerd not there (dockerd runs its own): Docker's API instead
    e.runner.answers["ctr"] = (1, "", "ctr: failed to dial \"/run/containerd/containerd.sock\": no such file")
    assert e.checkpoint("cache", str(tmp_path / "b.tar"), compression="none")["checkpoint_path"] == "engine-api"
