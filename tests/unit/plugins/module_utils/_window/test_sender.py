"""The sender's page server behind a forwarded port: one connection at a time, served from the split checkpoint:
the target's lazy-pages daemon's first; while it is served, another is closed unanswered; after it ended without
every page, a connection that opens with the run's token (the keeper finishing the fill), and no other."""

import os
import socket
import struct
import time

import pytest

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

    def settimeout(self, seconds):
        self.sk.settimeout(seconds)

    def close(self):
        self.sk.close()


def serving(tmp_path):
    d = criu_checkpoint(tmp_path)
    pages.split(str(d))
    sender = Sender({}, {"cache": "node2"}, "r1", "shop", str(tmp_path))
    client = sender.clients["node2"] = Client()
    port, token = sender.serve_pages("cache", str(d))
    assert port == 40001 and len(token) == 32
    return sender, client, token


def connect(client):
    chan = Channel(client.transport)
    client.transport.handler(chan, ("127.0.0.1", 5000), ("127.0.0.1", 40001))
    return chan


def ask(chan, index=0):
    """The INDEXth page of the lazy range at 0x400000."""
    chan.peer.sendall(pages._PSI.pack(pages.PS_IOV_GET, 1, 0x400000 + index * 4096, 7))
    head = pages._recv_exact(chan.peer, pages._PSI.size)
    assert pages._PSI.unpack(head)[1] == 1 and pages._recv_exact(chan.peer, 4096) == page(0x400000, index)


def served(sender, connections):
    deadline = time.time() + 5
    while time.time() < deadline:
        with sender.lock:
            entry = list(sender.page_servers.values())[0]
            over = entry["served"].get("connections") == connections and not entry.get("serving")
        if over:
            return sender.pages_served()
        time.sleep(0.01)
    raise AssertionError("not served")


def test_pages_are_served_to_one_connection_at_a_time_and_the_daemons_needs_no_token(tmp_path):
    sender, client, _token = serving(tmp_path)
    daemon, other = connect(client), connect(client)
    assert other.peer.recv(10) == b""  # closed, unanswered
    ask(daemon)
    assert sender.pages_served() == {}
    daemon.peer.sendall(pages._PSI.pack(pages.PS_IOV_CLOSE, 0, 0, 0))
    assert struct.unpack("<i", pages._recv_exact(daemon.peer, 4)) == (0,)
    got = served(sender, 1)["cache"]
    assert (got["pages"], got["requests"], got["connections"]) == (1, 1, 1)
    late = connect(client)  # every page is in: nothing more is served
    assert late.peer.recv(10) == b""


def test_after_a_daemon_that_died_only_a_connection_with_the_token_is_served(tmp_path):
    sender, client, token = serving(tmp_path)
    daemon = connect(client)
    ask(daemon)
    daemon.peer.close()  # died before every page was in
    served(sender, 1)
    stranger = connect(client)
    stranger.peer.sendall(pages._PSI.pack(pages.PS_IOV_GET, 1, 0x400000, 7))
    assert stranger.peer.recv(10) == b""
    assert served(sender, 2) == {}
    keeper = connect(client)
    keeper.peer.sendall(token.encode() + b"\n")
    assert keeper.peer.recv(3) == b"ok\n"
    ask(keeper, 1)
    keeper.peer.sendall(pages._PSI.pack(pages.PS_IOV_CLOSE, 0, 0, 0))
    assert struct.unpack("<i", pages._recv_exact(keeper.peer, 4)) == (0,)
    got = served(sender, 3)["cache"]
    assert (got["pages"], got["requests"]) == (2, 2)


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


def test_the_keepers_page_source_opens_with_the_token_and_tries_again_while_it_is_not_taken(tmp_path):
    """pages.PageSource against the sender's own token check and page server, over loopback: the first connection
    closed unanswered (the daemon's still being served), the next one taken; pages across two requests."""
    import threading
    d = criu_checkpoint(tmp_path)
    pages.split(str(d))
    index, token = pages.PageIndex(str(d)), "ab" * 16
    listener = socket.create_server(("127.0.0.1", 0))
    done = {}

    def accept():
        first, _a = listener.accept()
        first.close()  # busy: not taken
        conn, _a = listener.accept()
        if sender._token_given(conn, token):
            done["all_in"] = pages.serve(conn, index)
        conn.close()

    server = threading.Thread(target=accept, daemon=True)
    server.start()
    source = pages.PageSource("127.0.0.1", listener.getsockname()[1], token, wait=10)
    assert source.get(7, 0x400000, 3) == b"".join(page(0x400000, i) for i in range(3))
    with pytest.raises(OSError, match="no pages at 0x500000"):
        source.get(7, 0x500000, 1)  # not lazy: the server ends the connection, as CRIU's does
    server.join(5)
    listener.close()
    assert done == {"all_in": False}
