# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Docker engine: the Engine API through the Docker SDK for Python (``docker``).

Docker can checkpoint a container with CRIU (experimental daemons only) but cannot move one: the
SDK has no checkpoint methods, a restore from a custom checkpoint directory is refused (docker/cli
issue 3008), the checkpoint leaves out the files the container changed and its volumes, and
there is no option for CRIU's tcp-established. What this engine does about each, here and
nowhere else:

- checkpoint and restore through the API's raw endpoints (the low-level client);
- the archive is stacklift's own, portable and self-describing like Podman's export: the
  container's inspect data (``container.json``), the CRIU images (``checkpoint/``), its changed
  files read from the overlay2 upper directory (``rootfs-diff.tar``, deletions as
  ``deleted.files``) and its named volumes (``volumes/NAME.tar``);
- the restore creates a new container like the old one (image, command, environment, mounts,
  volumes, network and addresses), fills its upper directory and volumes, copies the CRIU images
  into the container's own checkpoints directory and starts it from them, retrying containerd's
  "already exists" race (moby issue 42900);
- CRIU options come from the container's ``org.criu.config`` annotation or /etc/criu/runc.conf,
  which runc reads; ``docker_container_problems`` in _checks/host.py says when tcp-established is missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "HAS_DOCKER", "DOCKER_IMPORT_ERROR", "COMPRESSIONS", "CHECKPOINT_ID", "CONTAINERD_NAMESPACE",
    "DEFAULT_SOCKET", "ALREADY_EXISTS", "START_ATTEMPTS", "DockerEngine", "DockerRemote", "normalize",
    "upper_dir", "volume_names", "volume_dirs", "create_body", "port_bindings",
]

import calendar
import json
import os
import shutil
import tarfile
import time
import traceback

from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import (
    ArchiveError, TarStream, json_member)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.docker_archive import (
    ARCHIVED_MARKER, CONTAINER_JSON, DELETED_FILES, OPAQUE_DIRS, apply_deletions, extract_file, json_list,
    member_name, trim_checkpoint, untar, write_archive)
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import (
    Engine, EngineError, ImageStore, NotFound, parse_version, which)

try:
    import docker
    from docker.errors import APIError, DockerException
    from docker.errors import NotFound as DockerNotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class APIError(DockerException):
        pass

    class DockerNotFound(APIError):
        pass


COMPRESSIONS = ["zstd", "gzip", "none"]
CHECKPOINT_ID = "stacklift"
CONTAINERD_NAMESPACE = "moby"   # where dockerd keeps its containers in containerd
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# containerd's race on an immediate restore (moby issue 42900): retried, it always went through.
ALREADY_EXISTS = "already exists"
START_ATTEMPTS = 6


class DockerEngine(Engine):
    name = "docker"

    def __init__(self, runner, api=None, base_url=None, binary="docker"):
        self.runner = runner
        self._api = api
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        self.binary = binary
        self._info = None

    # -- plumbing -------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            if not HAS_DOCKER:
                raise EngineError("the Docker engine needs the Docker SDK for Python (docker) on this host",
                                  exception=DOCKER_IMPORT_ERROR)
            try:
                self._api = docker.APIClient(base_url=self.base_url, version="auto", timeout=600)
            except DockerException as e:
                raise EngineError("cannot reach the Docker daemon at %s: %s" % (self.base_url, e))
        return self._api

    def _call(self, what, fn, *args, **kwargs):
        """Call the API; its errors become EngineError (NotFound for a 404 when MISSING is given)."""
        missing = kwargs.pop("missing", None)
        try:
            return fn(*args, **kwargs)
        except DockerNotFound as e:
            if missing:
                raise NotFound(missing, stderr=_explain(e))
            raise EngineError("%s failed: %s" % (what, _explain(e)), stderr=_explain(e))
        except DockerException as e:
            raise EngineError("%s failed: %s" % (what, _explain(e)), stderr=_explain(e))

    def _raw(self, method, path, what, params=None, data=None, missing=None):
        """An Engine API endpoint the SDK has no method for (checkpoints)."""
        api = self.api

        def go():
            url = api._url(path)
            if method == "post":
                res = api._post_json(url, data=data, params=params) if data is not None else \
                    api._post(url, params=params)
            elif method == "delete":
                res = api._delete(url, params=params)
            else:
                res = api._get(url, params=params)
            return api._result(res, json=method == "get")
        return self._call(what, go, missing=missing)

    def docker_root(self):
        return self.info().get("docker_root") or "/var/lib/docker"

    # -- Engine ---------------------------------------------------------
    def info(self):
        if self._info is None:
            info = self._call("docker info", self.api.info)
            version = self._call("docker version", self.api.version)
            runtime = info.get("DefaultRuntime") or "runc"
            rc, out, _err = self.runner([runtime, "--version"])
            rv = parse_version(out) if rc == 0 else None
            self._info = {
                "engine": "docker",
                "engine_version": version.get("Version"),
                "api_version": version.get("ApiVersion"),
                "runtime": runtime,
                "runtime_version": ".".join(str(x) for x in rv) if rv else None,
                "cgroup_version": "v%s" % info.get("CgroupVersion") if info.get("CgroupVersion") else None,
                "cgroup_manager": info.get("CgroupDriver"),
                "kernel": info.get("KernelVersion"),
                "arch": info.get("Architecture"),
                "criu_version": self.criu_version(),
                "experimental": bool(version.get("Experimental") or info.get("ExperimentalBuild")),
                "storage_driver": info.get("Driver"),
                "docker_root": info.get("DockerRootDir"),
            }
        return self._info

    def criu_version(self):
        rc, out, _err = self.runner(["criu", "--version"])
        v = parse_version(out) if rc == 0 else None
        return ".".join(str(x) for x in v) if v else None

    def container(self, name):
        c = normalize(self._call("docker inspect", self.api.inspect_container, name,
                                 missing="no container named %r on this host" % name))
        state = c.setdefault("State", {})
        if not state.get("Running"):
            # Podman's State.Checkpointed, which Docker lacks: stopped by our checkpoint, not started since
            cpdir = self._checkpoint_dir(c["Id"])
            state["Checkpointed"] = os.path.isdir(cpdir) and os.stat(cpdir).st_mtime >= _seconds(state.get("StartedAt"))
        return c

    def _checkpoint_dir(self, cid):
        return os.path.join(self.docker_root(), "containers", cid, "checkpoints", CHECKPOINT_ID)

    def container_users(self, name):
        top = self._call("docker top", self.api.top, name, ps_args="-o pid,user")
        titles = top.get("Titles") or []
        col = titles.index("USER") if "USER" in titles else -1
        return [p[col] for p in top.get("Processes") or []]

    def checkpoint(self, name, archive, compression="zstd", tcp=None, file_locks=False,
                   keep=False, leave_running=False, ignore_volumes=False, ignore_rootfs=False):
        if compression not in COMPRESSIONS:
            raise EngineError("compression must be one of %s" % ", ".join(COMPRESSIONS))
        c = self.container(name)
        upper = upper_dir(c) if not ignore_rootfs else None
        if not ignore_rootfs and not upper:
            raise EngineError("container %r has no overlay2 upper directory (storage driver %s): stacklift "
                              "moves a Docker container's changed files from overlay2 only"
                              % (name, c.get("GraphDriver", {}).get("Name")))
        self._drop_checkpoint(c["Id"])
        t0 = time.time()
        how = self._dump(name, c, leave_running)
        t1 = time.time()
        cpdir = self._checkpoint_dir(c["Id"])
        try:
            write_archive(archive, compression, c, cpdir, upper,
                          {} if ignore_volumes else volume_dirs(c))
        except (OSError, tarfile.TarError, ArchiveError) as e:
            raise EngineError("checkpoint of %r: writing the archive failed: %s; the checkpoint stays in %s"
                              % (name, e, cpdir), checkpoint_dir=cpdir)
        t2 = time.time()
        if not keep:
            trim_checkpoint(cpdir, archive)
        return {"runtime_checkpoint_duration": int((t1 - t0) * 1e6), "archive_duration": int((t2 - t1) * 1e6),
                "docker_checkpoint_duration": int((time.time() - t0) * 1e6), "checkpoint_path": how}

    def _dump(self, name, c, leave_running):
        """CRIU's dump of the container into its checkpoint directory; returns the path taken.

        Docker's own checkpoint has containerd store the images in its content store and dockerd
        copy them out again: 17 s for 690 MB here, where CRIU takes 2 s. containerd's own client
        (ctr) can have runc write them straight into the directory: that path is taken when ctr is
        there and the container has no restart policy. Docker's API otherwise. Note that dockerd
        restarts a container with a restart policy that its checkpoint stopped, through its own API
        too (seen on the lab): checkpoint_problems refuses such a container before anything is frozen.
        Restores go through Docker's API either way."""
        policy = ((c.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
        ctr = _which_ctr()
        if ctr and policy == "no":
            cpdir = self._checkpoint_dir(c["Id"])
            work = os.path.join(self.docker_root(), "containers", c["Id"], "stacklift-criu-work")
            for d in (cpdir, work):
                if os.path.isdir(d):
                    shutil.rmtree(d)
                os.makedirs(d, 0o700)
            argv = [ctr, "--namespace", CONTAINERD_NAMESPACE, "task", "checkpoint", "--image-path", cpdir,
                    "--work-path", work] + ([] if leave_running else ["--exit"]) + [c["Id"]]
            rc, out, err = self.runner(argv)
            if rc == 0:
                if not leave_running:
                    self._wait_stopped(c["Id"], name)
                return "containerd"
            if not any(w in (err or "").lower() for w in ("not found", "connection refused", "no such file")):
                log = _tail(os.path.join(work, "dump.log"))
                raise EngineError("checkpoint of %r failed: %s" % (name, (log or err or out).strip().splitlines()[-1:]),
                                  cmd=argv, rc=rc, stdout=out, stderr=(err or "") + log)
            shutil.rmtree(cpdir, ignore_errors=True)
        self._raw("post", "/containers/%s/checkpoints" % c["Id"], "docker checkpoint create %s" % name,
                  data={"CheckpointID": CHECKPOINT_ID, "Exit": not leave_running})
        return "engine-api"

    def _wait_stopped(self, cid, name, timeout=30):
        """Until dockerd has seen the task exit (it learns it from containerd's event)."""
        deadline = time.time() + timeout
        while ((self._call("docker inspect", self.api.inspect_container, cid).get("State") or {}).get("Running")):
            if time.time() > deadline:
                raise EngineError("checkpoint of %r: Docker still reports it running %d s after its dump"
                                  % (name, timeout))
            time.sleep(0.05)

    def _drop_checkpoint(self, cid):
        try:
            self._raw("delete", "/containers/%s/checkpoints/%s" % (cid, CHECKPOINT_ID), "docker checkpoint rm",
                      missing="no checkpoint")
        except NotFound:
            pass
        except EngineError as e:
            if not any(w in (e.stderr or "").lower() for w in ("does not exist", "no such", "not found")):
                raise

    def restore(self, archive, name=None, publish=None, ignore_static_ip=False, ignore_static_mac=False,
                tcp=None, file_locks=False, keep=False,
                ignore_volumes=False, ignore_rootfs=False):
        if tcp == "close":
            raise EngineError("tcp_close is not supported by the Docker engine (Docker passes no CRIU options); "
                              "set tcp-close in the container's CRIU configuration instead")
        t0 = time.time()
        made = {"container": None, "volumes": []}
        try:
            cid = self._restore_files(archive, name, publish, ignore_static_ip, ignore_static_mac,
                                      ignore_volumes, ignore_rootfs, made)
            t1 = time.time()
            self._start_from_checkpoint(cid, name or cid)
        except (EngineError, OSError, tarfile.TarError, ArchiveError, ValueError) as e:
            self._undo(made)
            if isinstance(e, EngineError):
                raise
            raise EngineError("restore of %s failed: %s" % (archive, e))
        t2 = time.time()
        if not keep:
            self._drop_checkpoint(cid)
        return {"archive_duration": int((t1 - t0) * 1e6), "runtime_restore_duration": int((t2 - t1) * 1e6),
                "docker_restore_duration": int((time.time() - t0) * 1e6)}

    def _undo(self, made):
        """Remove what a failed restore made, so that a retry finds the host as it was."""
        if made["container"]:
            try:
                self.api.remove_container(made["container"], force=True)
            except DockerException:
                pass
        for vol in made["volumes"]:
            try:
                self.api.remove_volume(vol, force=True)
            except DockerException:
                pass

    def _restore_files(self, archive, name, publish, ignore_static_ip, ignore_static_mac, ignore_volumes,
                       ignore_rootfs, made):
        """One pass over the archive: create the container, then fill it; returns its ID."""
        cid = upper = cpdir = None
        deleted, opaque = [], []
        with TarStream(archive) as tar:
            for m in tar:
                member = member_name(m.name)
                if member == CONTAINER_JSON:
                    old = json_member(tar, m, archive)
                    if not ignore_volumes:
                        for vol in sorted(volume_names(old)):
                            self._call("docker volume create %s" % vol, self.api.create_volume, vol,
                                       driver="local", labels=_volume_labels(old, vol))
                            made["volumes"].append(vol)
                    body = create_body(old, publish, ignore_static_ip, ignore_static_mac, ignore_volumes,
                                       image=self._same_image(old))
                    new_name = name or old["Name"]
                    created = self._call("docker create %s" % new_name, self.api.create_container_from_config,
                                         body, name=new_name)
                    cid = made["container"] = created["Id"]
                    new = self.container(cid)
                    upper = upper_dir(new)
                    cpdir = os.path.join(self.docker_root(), "containers", cid, "checkpoints", CHECKPOINT_ID)
                    os.makedirs(cpdir, 0o700)
                    continue
                if cid is None:
                    raise ArchiveError("%s: %s before %s; not a stacklift Docker archive"
                                       % (archive, member, CONTAINER_JSON))
                if member.startswith("checkpoint/") and m.isfile():
                    extract_file(tar, m, cpdir, member[len("checkpoint/"):])
                elif member.startswith("volumes/") and member.endswith(".tar") and not ignore_volumes:
                    vol = member[len("volumes/"):-len(".tar")]
                    mountpoint = self._call("docker volume inspect", self.api.inspect_volume, vol)["Mountpoint"]
                    untar(tar.extractfile(m), mountpoint)
                elif member == "rootfs-diff.tar" and not ignore_rootfs:
                    if not upper:
                        raise EngineError("the new container has no overlay2 upper directory to restore files to")
                    untar(tar.extractfile(m), upper)
                elif member in (DELETED_FILES, OPAQUE_DIRS) and not ignore_rootfs:
                    (deleted if member == DELETED_FILES else opaque).extend(json_list(tar, m, archive))
        if cid is None:
            raise ArchiveError("%s has no %s; not a stacklift Docker archive" % (archive, CONTAINER_JSON))
        if upper:
            apply_deletions(upper, deleted, opaque)
        return cid

    def _same_image(self, old):
        """The old container's image name when it names the same image here, else the image's ID."""
        name = (old.get("Config") or {}).get("Image")
        try:
            if name and self.image(name)["Id"] == old.get("Image"):
                return name
        except NotFound:
            pass
        return old.get("Image") or name

    def _start_from_checkpoint(self, cid, label):
        for attempt in range(START_ATTEMPTS):
            try:
                self._raw("post", "/containers/%s/start" % cid, "docker start --checkpoint %s" % label,
                          params={"checkpoint": CHECKPOINT_ID})
                return
            except EngineError as e:
                if ALREADY_EXISTS not in (e.stderr or "") or attempt == START_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 + 0.1 * attempt)

    def restore_in_place(self, name, tcp=None, file_locks=False):
        c = self.container(name)
        if os.path.exists(os.path.join(self._checkpoint_dir(c["Id"]), ARCHIVED_MARKER)):
            raise EngineError("the checkpoint of %r was not kept (keep=false): restore it from its archive" % name)
        t0 = time.time()
        self._start_from_checkpoint(c["Id"], name)
        self._drop_checkpoint(c["Id"])
        return {"runtime_restore_duration": int((time.time() - t0) * 1e6)}

    def remove(self, name):
        self._call("docker rm %s" % name, self.api.remove_container, name)

    def remove_force(self, name):
        self._call("docker rm -f %s" % name, self.api.remove_container, name, force=True,
                   missing="no container %r" % name)

    def remove_volume(self, name):
        self._call("docker volume rm %s" % name, self.api.remove_volume, name, missing="no volume %r" % name)

    def image(self, ref):
        return self._call("docker image inspect", self.api.inspect_image, ref, missing="no image %r on this host" % ref)

    def image_save_command(self, ref):
        return [self.binary, "save", ref]

    def image_load_command(self):
        return [self.binary, "load", "-q"]

    def tag(self, image_id, ref):
        repo, tag = ref.rsplit(":", 1) if ":" in ref.rsplit("/", 1)[-1] else (ref, "latest")
        self._call("docker tag", self.api.tag, image_id, repo, tag)

    def network(self, name):
        net = self._call("docker network inspect", self.api.inspect_network, name,
                         missing="no network named %r on this host" % name)
        containers = {}
        for cid, c in (net.get("Containers") or {}).items():
            addresses = (c.get("IPv4Address"), c.get("IPv6Address"))
            containers[cid] = {"name": c.get("Name"), "ips": [a.split("/")[0] for a in addresses if a]}
        subnets = [cfg["Subnet"] for cfg in (net.get("IPAM") or {}).get("Config") or [] if cfg.get("Subnet")]
        return {"name": net["Name"], "subnets": subnets, "containers": containers}

    def create_network(self, name, subnets):
        ipam = None
        if subnets:
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=s) for s in subnets])
        self._call("docker network create %s" % name, self.api.create_network, name, driver="bridge", ipam=ipam,
                   check_duplicate=True)

    def remove_network(self, name):
        self._call("docker network rm %s" % name, self.api.remove_network, name, missing="no network %r" % name)

    def containers(self):
        out = []
        for c in self._call("docker ps", self.api.containers, all=True):
            nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
            out.append({"id": c["Id"], "name": (c.get("Names") or ["/"])[0].lstrip("/"), "state": c.get("State"),
                        "networks": sorted(nets)})
        return out

    def volumes(self):
        vols = (self._call("docker volume ls", self.api.volumes) or {}).get("Volumes") or []
        return sorted(v["Name"] for v in vols)

    def changes(self, name):
        kinds = {0: "changed", 1: "added", 2: "deleted"}
        out = {"added": [], "changed": [], "deleted": []}
        for ch in self._call("docker diff", self.api.diff, name) or []:
            out[kinds.get(ch.get("Kind"), "changed")].append(ch["Path"])
        return out

    def mount(self, name):
        raise EngineError("the Docker engine does not mount containers; stacklift reads their overlay2 layers")

    def unmount(self, name):
        raise EngineError("the Docker engine does not mount containers")

    def exec_command(self, name, argv):
        return [self.binary, "exec", name] + list(argv)


class DockerRemote(ImageStore):
    """The few calls image_sync makes on the other host, over SSH with the docker CLI (the SDK
    talks to one daemon's socket; the other host's is not exposed)."""

    name = "docker"

    def __init__(self, runner, binary="docker"):
        self.runner = runner
        self.binary = binary

    def image(self, ref):
        cmd = [self.binary, "image", "inspect", "--", ref]
        rc, out, err = self.runner(cmd)
        if rc != 0:
            if "no such image" in (err or "").lower():
                raise NotFound("no image %r on that host" % ref, cmd=cmd, rc=rc, stderr=err)
            raise EngineError("docker image inspect failed", cmd=cmd, rc=rc, stdout=out, stderr=err)
        return json.loads(out)[0]

    def image_load_command(self):
        return [self.binary, "load", "-q"]

    def tag(self, image_id, ref):
        cmd = [self.binary, "tag", image_id, ref]
        rc, out, err = self.runner(cmd)
        if rc != 0:
            raise EngineError("docker tag failed", cmd=cmd, rc=rc, stdout=out, stderr=err)


def _which_ctr():
    return which("ctr")


def _tail(path, lines=20):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _seconds(stamp):
    """Docker's '2026-11-28T15:47:18.123456789Z' as seconds since the epoch (0 when there is none)."""
    if not stamp or stamp.startswith("0001-"):
        return 0
    try:
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def _explain(e):
    return getattr(e, "explanation", None) or str(e)


def normalize(c):
    """Docker's inspect data with what stacklift reads as Podman has it: the name without its
    leading '/', the image's name as ImageName."""
    c = dict(c)
    c["Name"] = (c.get("Name") or "").lstrip("/")
    c.setdefault("ImageName", (c.get("Config") or {}).get("Image"))
    return c


def upper_dir(c):
    gd = c.get("GraphDriver") or {}
    return (gd.get("Data") or {}).get("UpperDir") if gd.get("Name") == "overlay2" else None


def volume_names(c):
    return [m["Name"] for m in c.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]


def volume_dirs(c):
    """{name: host directory} of the container's local named volumes."""
    return {m["Name"]: m["Source"] for m in c.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name") and m.get("Driver", "local") == "local"}


def _volume_labels(c, vol):
    return {"io.stacklift.restored-for": c.get("Name") or ""}


def create_body(old, publish=None, ignore_static_ip=False, ignore_static_mac=False, ignore_volumes=False,
                image=None):
    """The body of POST /containers/create that makes a container like OLD (its inspect data), from
    IMAGE (a name or ID of the same image on this host; OLD's own image reference when None)."""
    config = {k: v for k, v in (old.get("Config") or {}).items() if k != "MacAddress"}
    if image:
        config["Image"] = image
    host = dict(old.get("HostConfig") or {})
    if publish:
        host["PortBindings"] = port_bindings(publish)
        config["ExposedPorts"] = {p: {} for p in host["PortBindings"]}
    if ignore_volumes:
        host["Binds"] = [b for b in host.get("Binds") or [] if b.startswith("/")]
    endpoints = {}
    for net, ep in sorted(((old.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        want = {"Aliases": [a for a in ep.get("Aliases") or [] if a != old["Id"][:12]] or None}
        ipam = ep.get("IPAMConfig") or {}
        if not ignore_static_ip and net not in ("bridge", "host", "none"):
            want["IPAMConfig"] = dict(ipam, IPv4Address=ipam.get("IPv4Address") or ep.get("IPAddress"))
        if not ignore_static_mac and ep.get("MacAddress"):
            want["MacAddress"] = ep["MacAddress"]
        endpoints[net] = {k: v for k, v in want.items() if v}
    config["HostConfig"] = host
    config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return config


def port_bindings(publish):
    """'8080:80', '127.0.0.1:8080:80/tcp' -> {'80/tcp': [{'HostIp': .., 'HostPort': ..}]}."""
    out = {}
    for p in publish:
        parts = p.split(":")
        container = parts[-1] if "/" in parts[-1] else parts[-1] + "/tcp"
        host_port = parts[-2] if len(parts) > 1 else ""
        host_ip = parts[-3] if len(parts) > 2 else ""
        out.setdefault(container, []).append({"HostIp": host_ip, "HostPort": host_port})
    return out
