"""A small web shop for the stacklift demo stack.

State it keeps, so a migration can show what survived:
- sessions in Redis (cookie ``sid``, key ``session:<sid>`` with a TTL),
- carts in Redis (hash ``cart:<sid>``, same TTL),
- orders in PostgreSQL, each written in one transaction,
- a pool of PostgreSQL connections opened at start and held open
  (``/stats`` reports their backend PIDs),
- in-memory counters: requests served and a timer that ticks every second.

Health: ``/health`` answers from memory; ``/health/deep`` as many frameworks' health endpoints do, with
``SELECT 1`` on a pooled PostgreSQL connection and a Redis ``PING`` (503 when either fails).

Quiesce hook: ``POST /admin/drain`` makes new requests wait (they stall, they do
not fail) until ``POST /admin/resume``; ``/stats`` reports the requests in flight.
"""

import json
import os
import secrets
import threading
import time
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import psycopg2
import psycopg2.pool
import redis

DB_DSN = os.environ.get("SHOP_DB_DSN", "host=db user=postgres dbname=postgres")
REDIS_HOST = os.environ.get("SHOP_REDIS_HOST", "cache")
# The database's password comes as libpq's PGPASSWORD; Redis' as an ACL user and password.
REDIS_USER = os.environ.get("SHOP_REDIS_USER") or None
REDIS_PASSWORD = os.environ.get("SHOP_REDIS_PASSWORD") or None
SESSION_TTL = int(os.environ.get("SHOP_SESSION_TTL", "1800"))
POOL_SIZE = int(os.environ.get("SHOP_POOL_SIZE", "3"))
PORT = int(os.environ.get("SHOP_PORT", "8080"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id serial PRIMARY KEY, username text NOT NULL, created timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS order_items (
    order_id int REFERENCES orders(id), item text NOT NULL, qty int NOT NULL);
"""


class Shop:
    def __init__(self):
        self.started = time.time()
        self.requests = 0
        self.ticks = 0
        self.active = 0
        self.lock = threading.Lock()
        self.open_gate = threading.Event()
        self.open_gate.set()
        self.pool = self._connect_pool()
        self.backend_pids = []
        conns = [self.pool.getconn() for _slot in range(POOL_SIZE)]
        for c in conns:
            self.backend_pids.append(c.get_backend_pid())
        with conns[0], conns[0].cursor() as cur:
            cur.execute(SCHEMA)
        for c in conns:
            self.pool.putconn(c)
        self.redis = redis.Redis(host=REDIS_HOST, username=REDIS_USER, password=REDIS_PASSWORD,
                                 decode_responses=True, socket_keepalive=True)
        threading.Thread(target=self._tick, daemon=True).start()

    @staticmethod
    def _connect_pool():
        deadline = time.time() + 60
        while True:
            try:
                return psycopg2.pool.ThreadedConnectionPool(POOL_SIZE, POOL_SIZE, DB_DSN)
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def _tick(self):
        while True:
            time.sleep(1)
            with self.lock:
                self.ticks += 1

    def stats(self):
        with self.lock:
            return {"requests": self.requests, "ticks": self.ticks, "active": self.active,
                    "draining": not self.open_gate.is_set(), "pid": os.getpid(),
                    "db_backend_pids": sorted(self.backend_pids), "started": self.started}

    def db(self, fn):
        conn = self.pool.getconn()
        try:
            with conn:  # one transaction: commit on success, roll back on error
                with conn.cursor() as cur:
                    return fn(cur)
        finally:
            self.pool.putconn(conn)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    shop = None

    def log_message(self, *args):
        pass

    def _send(self, code, body, cookie=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", "sid=%s; Path=/; HttpOnly" % cookie)
        self.end_headers()
        self.wfile.write(data)

    def _sid(self):
        c = SimpleCookie(self.headers.get("Cookie", ""))
        return c["sid"].value if "sid" in c else None

    def _session(self):
        sid = self._sid()
        user = self.shop.redis.hget("session:%s" % sid, "user") if sid else None
        return sid, user

    def _dispatch(self, method):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if int(self.headers.get("Content-Length") or 0):
            self.rfile.read(int(self.headers["Content-Length"]))
        shop = self.shop
        if url.path.startswith("/admin/") or url.path in ("/health", "/health/deep", "/stats"):
            return self._admin(method, url.path)
        shop.open_gate.wait()  # while drained, requests stall here instead of failing
        with shop.lock:
            shop.requests += 1
            shop.active += 1
        try:
            return self._shop(method, url.path, q)
        finally:
            with shop.lock:
                shop.active -= 1

    def _admin(self, method, path):
        shop = self.shop
        if path == "/health":
            return self._send(200, {"ok": True})
        if path == "/health/deep":
            try:
                one = shop.db(lambda cur: cur.execute("SELECT 1") or cur.fetchone()[0])
                pong = shop.redis.ping()
            except (psycopg2.Error, redis.RedisError) as e:
                return self._send(503, {"ok": False, "error": str(e)})
            return self._send(200, {"ok": True, "db": one, "cache": pong})
        if path == "/stats":
            return self._send(200, shop.stats())
        if path == "/admin/drain" and method == "POST":
            shop.open_gate.clear()
            return self._send(200, shop.stats())
        if path == "/admin/resume" and method == "POST":
            shop.open_gate.set()
            return self._send(200, shop.stats())
        return self._send(404, {"error": "not found"})

    def _shop(self, method, path, q):
        shop = self.shop
        r = shop.redis
        if path == "/login" and method == "POST":
            sid = secrets.token_hex(16)
            r.hset("session:%s" % sid, mapping={"user": q["user"], "since": int(time.time())})
            r.expire("session:%s" % sid, SESSION_TTL)
            return self._send(200, {"sid": sid, "user": q["user"]}, cookie=sid)
        sid, user = self._session()
        if not user:
            return self._send(401, {"error": "no session"})
        if path == "/whoami":
            return self._send(200, {"user": user, "ttl": r.ttl("session:%s" % sid)})
        cart_key = "cart:%s" % sid
        if path == "/cart" and method == "POST":
            r.hincrby(cart_key, q["item"], int(q.get("qty", 1)))
            r.expire(cart_key, SESSION_TTL)
        if path == "/cart":
            return self._send(200, {"cart": {k: int(v) for k, v in r.hgetall(cart_key).items()}})
        if path == "/checkout" and method == "POST":
            cart = r.hgetall(cart_key)
            if not cart:
                return self._send(409, {"error": "cart is empty"})

            def write_order(cur):
                cur.execute("INSERT INTO orders (username) VALUES (%s) RETURNING id", (user,))
                oid = cur.fetchone()[0]
                for item, qty in sorted(cart.items()):
                    cur.execute("INSERT INTO order_items VALUES (%s, %s, %s)", (oid, item, int(qty)))
                return oid
            oid = shop.db(write_order)
            r.delete(cart_key)
            return self._send(200, {"order_id": oid})
        if path == "/orders":
            def read_orders(cur):
                cur.execute("SELECT o.id, i.item, i.qty FROM orders o JOIN order_items i ON i.order_id = o.id "
                            "WHERE o.username = %s ORDER BY o.id, i.item", (user,))
                return cur.fetchall()
            orders = {}
            for oid, item, qty in shop.db(read_orders):
                orders.setdefault(str(oid), {})[item] = qty
            return self._send(200, {"orders": orders})
        return self._send(404, {"error": "not found"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")


def main():
    Handler.shop = Shop()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
