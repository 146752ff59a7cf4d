"""What the unit tests fake: the engine's commands (FakeRunner), the answers of a Podman host (HOST,
restore_host), and a Podman checkpoint archive (make_archive). Imported as
ansible_collections.stacklift.migrate.tests.unit.fakes, so that ansible-test units finds it too."""

import io
import json
import os
import struct
import subprocess
import tarfile

from ansible_collections.stacklift.migrate.plugins.module_utils._engines.pages import _encode_varint


class FakeRunner:
    """Stands in for the engine's commands: answers by the first words of argv, records each call."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.calls = []

    def __call__(self, argv, data=None, **kw):
        self.calls.append(list(argv))
        words = list(argv)
        words[0] = words[0].rsplit("/", 1)[-1]
        for n in range(len(words), 0, -1):
            key = " ".join(words[:n])
            if key in self.answers:
                ans = self.answers[key]
                ans = ans(argv) if callable(ans) else ans
                if isinstance(ans, (dict, list)):
                    return 0, json.dumps(ans), ""
                return ans
        raise AssertionError("unexpected command: %s" % " ".join(argv))

    def commands(self, prefix):
        return [c for c in self.calls if " ".join([c[0].rsplit("/", 1)[-1]] + c[1:]).startswith(prefix)]


# A Podman host, as its commands answer.
HOST = {
    "podman info": {"host": {"ociRuntime": {"name": "runc", "version": "runc version 1.1.15"},
                             "cgroupVersion": "v1", "kernel": "6.18.44"}},
    "podman version": {"Client": {"Version": "5.4.2"}},
    "criu --version": (0, "Version: 4.2.1\n", ""),
    "podman top": (0, "HUSER\nroot\n", ""),
    "podman ps": [{"Id": "c1", "Names": ["db"], "State": "running"}],
    "podman volume ls": [],
}


def restore_host(**extra):
    answers = dict(HOST, **{
        "podman container inspect": (125, "[]", "Error: no such container cache"),
        "podman image inspect": [{"Id": "cf2f42f1", "RepoTags": ["localhost/stacklift/redis:latest"]}],
        "podman network inspect": [{"name": "shopnet", "subnets": [{"subnet": "10.89.0.0/24"}], "containers": {}}],
        "podman ps": [],
    })
    answers.update(extra)
    return FakeRunner(answers)


# A Podman checkpoint archive of the shop's cache.
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


# A CRIU checkpoint's pagemap and pages images, written as CRIU writes them (see _engines/pages.py).
MAGIC = struct.pack("<II", 0x54564319, 0x56084025)
LAZY, PRESENT = 2, 4
# (vaddr, pages, flags) of one process, as a plain dump marks them: anonymous memory lazy and present, a stack
# and file-backed data present only, a hole with neither.
ENTRIES = [(0x10000, 2, PRESENT), (0x400000, 3, LAZY | PRESENT), (0x500000, 1, 0), (0x7f0000, 4, LAZY | PRESENT),
           (0x900000, 1, PRESENT)]


def entry(vaddr, nr, flags):
    return b"\x08" + _encode_varint(vaddr) + b"\x10" + _encode_varint(nr) + b"\x20" + _encode_varint(flags)


def write_image(path, raws):
    with open(path, "wb") as f:
        f.write(MAGIC)
        for raw in raws:
            f.write(struct.pack("<I", len(raw)) + raw)


def page(vaddr, i):
    """A page whose bytes say where it belongs."""
    return (b"%x+%d;" % (vaddr, i)).ljust(4096, b".")


def write_dump(d, entries, pid=7, mark=b""):
    """What CRIU writes of process PID into D: its pagemap of ENTRIES, and their present pages (pages-3.img),
    each page's bytes saying where it belongs, after MARK."""
    write_image(os.path.join(str(d), "pagemap-%d.img" % pid), [b"\x08" + _encode_varint(3)] + [entry(*e) for e in entries])
    with open(os.path.join(str(d), "pages-3.img"), "wb") as f:
        f.write(b"".join(mark + page(v, i)[len(mark):] for v, n, fl in entries if fl & PRESENT for i in range(n)))


def criu_checkpoint(tmp_path, pid=7, entries=None):
    """A checkpoint directory of one process PID with ENTRIES (default ENTRIES) and their pages."""
    d = tmp_path / "checkpoint"
    d.mkdir()
    write_dump(d, ENTRIES if entries is None else entries, pid)
    (d / "core-7.img").write_bytes(b"core")
    return d


def snapshot(d):
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))}
