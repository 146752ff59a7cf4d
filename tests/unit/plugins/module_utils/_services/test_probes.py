"""The readiness loop, and probes against small servers on loopback."""

import socket
import socketserver
import struct
import threading

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._services import probes


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def time(self):
        return self.now

    def sleep(self, s):
        self.now += s


def scripted(*answers):
    it = iter(answers)
    return lambda: next(it)


def test_ready_at_the_third_attempt():
    clock = FakeClock()
    probe = scripted((False, "refused"), (False, "refused"), (True, "ok"))
    r = probes.wait_ready(probe, retries=10, interval=0.5, clock=clock.time, sleep=clock.sleep)
    assert r["ready"] and r["attempts"] == 3 and r["elapsed"] == 1.0 and r["detail"] == "ok"


def test_gives_up_after_retries_with_the_last_answer():
    clock = FakeClock()
    r = probes.wait_ready(lambda: (False, "refused"), retries=4, interval=1, clock=clock.time, sleep=clock.sleep)
    assert not r["ready"] and r["attempts"] == 4 and r["detail"] == "refused"


def test_timeout_bounds_the_wait():
    clock = FakeClock()
    r = probes.wait_ready(lambda: (False, "x"), retries=1000, interval=1, timeout=5, clock=clock.time,
                          sleep=clock.sleep)
    assert not r["ready"] and r["elapsed"] <= 5


def test_stability_window_restarts_after_a_failure():
    clock = FakeClock()
    answers = [(True, "ok"), (False, "flap")] + [(True, "ok")] * 10
    r = probes.wait_ready(scripted(*answers), retries=20, interval=1, stable_for=3, clock=clock.time,
                          sleep=clock.sleep)
    # ready from attempt 3 on; stable for 3 s at attempt 6
    assert r["ready"] and r["attempts"] == 6


def test_progress_must_move_from_the_baseline():
    clock = FakeClock()
    values = iter(["10", "10", "10", "11"])
    r = probes.wait_ready(lambda: (True, "up"), retries=10, interval=1, progress=lambda: next(values),
                          clock=clock.time, sleep=clock.sleep)
    assert r["ready"] and r["attempts"] == 3 and r["progress_baseline"] == "10" and r["progress_value"] == "11"


def test_given_baseline_and_a_failing_progress_check():
    clock = FakeClock()
    r = probes.wait_ready(lambda: (True, "up"), retries=3, interval=1, progress=lambda: None, baseline="5",
                          clock=clock.time, sleep=clock.sleep)
    assert not r["ready"] and "gave no value" in r["detail"]


@pytest.fixture
def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(handler):
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return server


def test_tcp_probe(closed_port):
    server = serve(socketserver.BaseRequestHandler)
    try:
        assert probes.tcp_probe("127.0.0.1", server.server_address[1])()[0]
    finally:
        server.shutdown()
        server.server_close()
    ok, detail = probes.tcp_probe("127.0.0.1", closed_port)()
    assert not ok and "refused" in detail.lower()


class FakeRedis(socketserver.StreamRequestHandler):
    reply = b"+PONG\r\n"

    def handle(self):
        self.request.recv(64)
        self.wfile.write(self.reply)


def test_redis_probe_wants_pong():
    server = serve(FakeRedis)
    try:
        assert probes.redis_probe("127.0.0.1", server.server_address[1])() == (True, "redis answered PONG")
        FakeRedis.reply = b"-LOADING Redis is loading the dataset in memory\r\n"
        ok, detail = probes.redis_probe("127.0.0.1", server.server_address[1])()
        assert not ok and "LOADING" in detail
    finally:
        FakeRedis.reply = b"+PONG\r\n"
        server.shutdown()
        server.server_close()


class FakePostgres(socketserver.BaseRequestHandler):
    """Trust auth, then answers SELECT 1 as PostgreSQL does."""
    answer = b"1"

    def msg(self, kind, payload):
        return kind + struct.pack("!I", len(payload) + 4) + payload

    def handle(self):
        n = struct.unpack("!I", self.request.recv(4))[0]
        self.request.recv(n - 4)
        self.request.sendall(self.msg(b"R", struct.pack("!I", 0)) + self.msg(b"Z", b"I"))
        self.request.recv(1024)  # the query
        row = struct.pack("!H", 1) + struct.pack("!I", len(self.answer)) + self.answer
        self.request.sendall(self.msg(b"T", b"\0\0") + self.msg(b"D", row) + self.msg(b"C", b"SELECT 1\0")
                             + self.msg(b"Z", b"I"))
        self.request.recv(64)


def test_postgres_probe_speaks_the_protocol(closed_port):
    server = serve(FakePostgres)
    try:
        ok, detail = probes.postgres_probe("127.0.0.1", server.server_address[1])()
        assert ok, detail
    finally:
        server.shutdown()
        server.server_close()
    assert not probes.postgres_probe("127.0.0.1", closed_port)()[0]


class FakeHTTP(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        body = b'{"ok": true}'
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_http_probe_checks_status_and_body():
    server = serve(FakeHTTP)
    port = server.server_address[1]
    try:
        assert probes.http_probe("127.0.0.1", port, "/health", body_regex='"ok": true')()[0]
        ok, detail = probes.http_probe("127.0.0.1", port, "/health", body_regex="nope")()
        assert not ok and "does not match" in detail
        ok, detail = probes.http_probe("127.0.0.1", port, status_codes=[204])()
        assert not ok and "answered 200" in detail
    finally:
        server.shutdown()
        server.server_close()


def test_command_probe():
    assert probes.command_probe(lambda argv: (0, "", ""), ["true"])()[0]
    ok, detail = probes.command_probe(lambda argv: (1, "", "not ready"), ["false"])()
    assert not ok and "exited 1: not ready" in detail


def test_scram_sha_256_gives_rfc_7677s_proof_and_checks_the_server():
    scram = probes.ScramSha256("pencil", nonce="rOprNGfwEbeRWgbNEkqO", username="user")
    assert scram.client_first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    assert scram.client_final(server_first) == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    scram.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(probes.PostgresError, match="signature is wrong"):
        scram.verify_server(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(probes.PostgresError, match="nonce"):
        probes.ScramSha256("pencil", nonce="abc").client_final(b"r=xyz,s=AAAA,i=1")


def test_a_password_asked_for_but_not_given_is_named():
    with pytest.raises(probes.PostgresError, match=r"asks for a password \(scram-sha-256 authentication\); set "
                                                   r"postgres_password"):
        probes._pg_authenticate(None, 10, b"SCRAM-SHA-256\x00\x00", "shop", None, None)


def test_resp_commands():
    assert probes.resp_command("AUTH", "shop", "p w") == b"*3\r\n$4\r\nAUTH\r\n$4\r\nshop\r\n$3\r\np w\r\n"
