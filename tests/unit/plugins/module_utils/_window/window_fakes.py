"""The window tests' stand-ins: a host's containers and engine answers, a sender, a window of either side."""

import io
import json
import os
import time
from pathlib import Path


from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.podman import PodmanEngine
from ansible_collections.stacklift.migrate.plugins.module_utils._archive.stream import sha256_file
from ansible_collections.stacklift.migrate.tests.unit.fakes import FakeRunner, make_archive


HOST = {
    "podman info": {"host": {"ociRuntime": {"name": "runc", "version": "1.1.15"}, "cgroupVersion": "v1",
                             "kernel": "6.18.44"}},
    "podman version": {"Client": {"Version": "5.4.2"}},
    "criu --version": (0, "Version: 4.2.1\n", ""),
    "podman top": (0, "HUSER\nroot\n", ""),
    "podman diff": {"changed": [], "added": [], "deleted": []},
    "podman unmount": (0, "", ""),
    "nft": (0, "", ""),
    "ip -j address show scope global": (0, "[]", ""),  # no interface listed: the host fence answers before routing
}


SERVICES = {"db": {"container": "shop-db", "tcp": "established", "probe": {"type": "tcp", "port": 5432}},
            "cache": {"container": "shop-cache", "tcp": "established", "probe": {"type": "tcp", "port": 6379}},
            "app": {"container": "shop-app", "tcp": "established", "probe": {"type": "tcp", "port": 8080}}}


TIERS = [["db", "cache"], ["app"]]


class Containers:
    """The engine's view of the containers, changed by the faked checkpoint and restore commands."""

    def __init__(self, **state):
        self.state = dict(state)  # name -> running | exited | absent
        self.ids = {n: "id-" + n for n in state}
        self.fenced = set()  # pids with a fence in their network namespace
        self.upper = {}  # name -> its overlay upper directory (its changes to the image), when it has one
        self.mounts = {}  # name -> its inspect data's Mounts

    def nsenter(self, argv):
        pid = int(argv[2])
        if "list" in argv:
            return (0, "table", "") if pid in self.fenced else (1, "", "Error: No such file or directory")
        if "delete" in argv:
            self.fenced.discard(pid)
        else:
            self.fenced.add(pid)
        return 0, "", ""

    def pid(self, name):
        return 100 + sorted(self.ids).index(name)

    def inspect(self, argv):
        """podman container inspect -- NAME...: those there, and 125 naming the others."""
        found, missing = [], []
        for name in argv[argv.index("--") + 1:]:
            st = self.state.get(name, "absent")
            if st == "absent":
                missing.append("Error: no such container %s" % name)
                continue
            found.append({"Id": self.ids[name], "Name": name, "Image": "img", "State": {
                "Running": st == "running", "Checkpointed": st == "exited", "Status": st, "Pid": self.pid(name)},
                "NetworkSettings": {"Networks": {"shopnet": {"IPAddress": "10.89.10.%d" % self.pid(name)}}},
                "GraphDriver": {"Data": {"UpperDir": self.upper.get(name)}},
                "Mounts": self.mounts.get(name, [])})
        return (125 if missing else 0), json.dumps(found) if found else "", "\n".join(missing)


def engine_runner(tmp_path, containers, fail_checkpoint=(), fail_restore=()):
    root = tmp_path / "rootfs"
    root.mkdir(exist_ok=True)

    def checkpoint(argv):
        name = argv[-1]
        if name in fail_checkpoint:
            return 125, "", "Error: CRIU failed for %s" % name
        make_archive(Path(argv[argv.index("--export") + 1]), "zstd")
        containers.state[name] = "exited"
        return 0, "{}", ""

    def restore(argv):
        name = argv[-1]
        if name in fail_restore:
            return 125, "", "Error: restore of %s failed" % name
        if "--import" in argv:
            name = {"cache": "shop-cache"}.get("cache")  # make_archive's config names "cache"
            containers.ids[name] = "new-" + name
        containers.state[name] = "running"
        return 0, "{}", ""

    def remove(argv):
        containers.state[argv[-1]] = "absent"
        return 0, "", ""
    answers = dict(HOST, **{"podman container inspect": containers.inspect, "podman container checkpoint": checkpoint,
                            "podman container restore": restore, "podman rm": remove, "nsenter": containers.nsenter,
                            "podman mount": (0, str(root) + "\n", "")})
    return FakeRunner(answers)


def make_window(cls, tmp_path, runner, services=None, **kw):
    services = services or SERVICES
    host = fences.Host(PodmanEngine(runner, binary="podman"), runner)
    host.proc = str(tmp_path / "proc")  # the containers' processes: fake_proc
    return cls(host, "shop", "r1", str(tmp_path / "ck"), {n: dict(s, name=n) for n, s in services.items()},
               TIERS, **kw)


class Sender:
    def __init__(self):
        self.sent, self.aborted, self.told = [], [], []
        self.pages = {}  # {name: the split's summary it was given}; served: {name: counts} once "taken"
        self.served = {}
        self.files, self.staged, self.stage_error = {}, [], None  # staged: (name, data bytes) each stream
        self.dropped = []  # the stages whose staging failed, removed from the target
        self.target_root = ""

    def __call__(self, name, archive, manifest, sha256, pages=None, files=None):
        assert sha256_file(archive) == sha256  # only durable, whole archives are sent
        self.sent.append(name)
        if pages:
            self.pages[name] = pages
        if files:
            self.files[name] = files
        return {"bytes": os.path.getsize(archive)}

    def stage_files(self, name, root, stage, previous, mapped=(), tree_dir=None):
        """The real records, received into TARGET_ROOT + STAGE (the target's path, on this host), or TREE_DIR."""
        if self.stage_error:
            raise OSError(self.stage_error)
        entries, out = {}, io.BytesIO()
        for record, data in tree.changes(root, previous, mapped=mapped, out=entries):
            out.write(tree.encode(record, data))
        out.write(tree.encode({"op": "end", "entries": entries}))
        out.seek(0)
        written = tree.receive(out, self.target_root + stage, tree_dir)
        self.staged.append((name, written))
        return entries, {"bytes": written, "seconds": 0.01}

    def drop_staged(self, name, stage):
        self.dropped.append(stage)
        return None

    def volume_dir(self, name, volume, stage):
        """The volume made on the target (TARGET_ROOT/volumes/VOLUME), and the stage's mark that it was made."""
        path = os.path.join(self.target_root, "volumes", volume)
        os.makedirs(path)
        os.makedirs(self.target_root + stage)
        with open(os.path.join(self.target_root + stage, tree.MADE), "w") as f:
            f.write(volume + "\n")
        return path

    def pages_served(self):
        return dict(self.served)

    def abort(self, msg):
        self.aborted.append(msg)

    def tell(self, kind, msg=None):
        self.told.append((kind, len(self.sent)))  # what it told the targets, after how many archives

    def connect_all(self):
        self.connected = True

    def committed(self, wait=1.0):
        """Whether the targets serve within WAIT: once ``on_targets``, when given, is set."""
        on_targets = getattr(self, "on_targets", None)
        if on_targets is None:
            time.sleep(wait)
            return False
        return on_targets.wait(wait)


def run_dir(tmp_path, run="r1"):
    """Where run RUN's archives lie on a host (protocol.run_archive_dir)."""
    return tmp_path / "ck" / "runs" / run


def nft_scripts(host, runner):
    """The nft scripts HOST runs from now on, each as (how many engine commands RUNNER had seen, the script)."""
    scripts, run = [], host.run

    def recording(argv, data=None):
        if argv[0] == "nft" and data:
            scripts.append((len(runner.calls), data))
        return run(argv, data=data) if data is not None else run(argv)
    host.run = recording
    return scripts
