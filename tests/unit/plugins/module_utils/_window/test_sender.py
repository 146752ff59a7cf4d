"""The sender's page server behind a forwarded port: one connection a port (the target's lazy-pages daemon), served
from the split checkpoint; a later connection (another user of the target's loopback) closed unanswered."""

import os
import socket
import struct
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages
from ansible_collections.stacklift.migrate.plugins.module_utils._window import sender
from ansible_collections.stacklift.migrate.plugins.module_utils._window.sender import Sender
from ansible_collections.stacklift.migrate.tests.unit.fakes import criu_checkpoint, page


class Transport:
    def __init__(self):
        self.handler = None

    def request_port_forward(self, address, port, handler=None):
        assert (address, port) == ("127.0.0.1", 0)  # the target's loopback, a port it picks
        self.handler = handler
        return 40001


class Client:
    def __init__(self):
        self.transport = Transport()

    def get_transport(self):
        return self.transport


class Channel:
    """A forwarded connection: one end of a socket pair, as paramiko's channel."""

    def __init__(self, transport):
        self.sk, self.peer = socket.socketpair()
        self.transport = transport

    def get_transport(self):
        return self.transport

    def recv(self, n):
        return self.sk.recv(n)

    def sendall(self, data):
        return self.sk.sendall(data)

    def close(self):
        self.sk.close()


def test_pages_are_served_to_the_first_connection_of_their_port_only(tmp_path):
    d = criu_checkpoint(tmp_path)
    pages.split(str(d))
    sender = Sender({}, {"cache": "node2"}, "r1", "shop", str(tmp_path))
    client = sender.clients["node2"] = Client()
    assert sender.serve_pages("cache", str(d)) == 40001
    daemon, other = Channel(client.transport), Channel(client.transport)
    client.transport.handler(daemon, ("127.0.0.1", 5000), ("127.0.0.1", 40001))
    client.transport.handler(other, ("127.0.0.1", 5001), ("127.0.0.1", 40001))
    assert other.peer.recv(10) == b""  # closed, unanswered
    daemon.peer.sendall(pages._PSI.pack(pages.PS_IOV_GET, 1, 0x400000, 7))
    head = pages._recv_exact(daemon.peer, pages._PSI.size)
    assert pages._PSI.unpack(head)[1] == 1 and pages._recv_exact(daemon.peer, 4096) == page(0x400000, 0)
    assert sender.pages_served() == {}
    daemon.peer.sendall(pages._PSI.pack(pages.PS_IOV_CLOSE, 0, 0, 0))
    assert struct.unpack("<i", pages._recv_exact(daemon.peer, 4)) == (0,)
    deadline = time.time() + 5
    while not sender.pages_served() and time.time() < deadline:
        time.sleep(0.01)
    served = sender.pages_served()["cache"]
    assert (served["pages"], served["requests"]) == (1, 1)


# podman as the staging's scripts use it: volumes are directories under VOLUMES, every call logged.
FAKE_PODMAN = """#!/bin/sh
echo "$*" >> {log}
case "$1 $2" in
  "volume exists") [ -d {volumes}/$3 ] ;;
  "volume create") mkdir -p {volumes}/$3 ;;
  "volume inspect") echo {volumes}/$5 ;;
  "volume rm") rm -rf {volumes}/$4 ;;
  *) exit 9 ;;
esac
"""


def run_script(tmp_path, script):
    import subprocess
    bin_dir, volumes, log = tmp_path / "bin", tmp_path / "volumes", tmp_path / "podman.log"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "podman").write_text(FAKE_PODMAN.format(log=log, volumes=volumes))
        (bin_dir / "podman").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=30, check=False)


def test_a_staged_volume_is_made_once_for_the_run_and_one_there_already_is_refused_then_dropped(tmp_path):
    stage = tmp_path / "ck" / "db.tar.zst.files"
    script = sender.VOLUME_SCRIPT.format(v="pgdata", s=str(stage / "volume-pgdata"),
                                         made=str(stage / "volume-pgdata" / "made"))
    got = run_script(tmp_path, script)
    assert got.returncode == 0 and got.stdout.strip() == str(tmp_path / "volumes" / "pgdata")
    assert (stage / "volume-pgdata" / "made").read_text() == "pgdata\n"
    assert run_script(tmp_path, script).returncode == 0  # the same run again (a resumed window): the same volume
    other = sender.VOLUME_SCRIPT.format(v="pgdata", s=str(tmp_path / "other"), made=str(tmp_path / "other" / "made"))
    got = run_script(tmp_path, other)  # another run's, or a volume of the target's own: not this staging's
    assert got.returncode == 3 and "a volume of that name is there already" in got.stderr
    got = run_script(tmp_path, sender.DROP_SCRIPT.format(s=str(stage)))
    assert got.returncode == 0 and not (tmp_path / "volumes" / "pgdata").exists() and not stage.exists()
    assert run_script(tmp_path, sender.DROP_SCRIPT.format(s=str(stage))).returncode == 0  # nothing left: no error
