"""The sender's page server behind a forwarded port: one connection a port (the target's lazy-pages daemon), served
from the split checkpoint; a later connection (another user of the target's loopback) closed unanswered."""

import socket
import struct
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._engines import pages
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
