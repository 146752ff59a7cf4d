"""Shoppers for the demo shop, run where the lab's clients live (ip netns exec stacklift-client).

  shopper.py drive STATE [--shoppers N]     log in, fill carts, place orders; keep what was done in STATE
  shopper.py verify STATE                   check that every session, cart, order and counter survived
  shopper.py soak OUT --stop FILE           one keep-alive connection, requests back to back until FILE
                                            exists; every request, its latency and any error go to OUT

Only the standard library: it runs with the controller's Python.
"""

import argparse
import http.client
import json
import os
import sys
import time

SHOP = os.environ.get("SHOP_ADDRESS", "10.89.10.4")
PORT = int(os.environ.get("SHOP_PORT", "8080"))
ITEMS = ["tea", "mug", "kettle", "scarf", "socks"]


class Client:
    def __init__(self, timeout=30):
        self.conn = http.client.HTTPConnection(SHOP, PORT, timeout=timeout)
        self.cookie = None

    def call(self, method, path):
        headers = {"Cookie": "sid=%s" % self.cookie} if self.cookie else {}
        self.conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        resp = self.conn.getresponse()
        body = json.loads(resp.read() or b"null")
        if resp.status != 200:
            raise RuntimeError("%s %s -> %d %s" % (method, path, resp.status, body))
        if resp.getheader("Set-Cookie"):
            self.cookie = resp.getheader("Set-Cookie").split(";")[0].split("=", 1)[1]
        return body


def drive(state_path, shoppers):
    state = {"shoppers": {}}
    for i in range(shoppers):
        user = "shopper%d" % i
        c = Client()
        c.call("POST", "/login?user=%s" % user)
        orders = []
        # Everyone orders once, then leaves a cart for later.
        for item in ITEMS[i % 3:(i % 3) + 2]:
            c.call("POST", "/cart?item=%s&qty=%d" % (item, i + 1))
        orders.append(c.call("POST", "/checkout")["order_id"])
        c.call("POST", "/cart?item=%s&qty=%d" % (ITEMS[(i + 2) % len(ITEMS)], i + 2))
        state["shoppers"][user] = {"sid": c.cookie, "cart": c.call("GET", "/cart")["cart"],
                                   "orders": c.call("GET", "/orders")["orders"],
                                   "ttl": c.call("GET", "/whoami")["ttl"], "order_ids": orders}
    state["stats"] = Client().call("GET", "/stats")
    state["at"] = time.time()
    with open(state_path, "w") as f:
        json.dump(state, f, indent=2)
    print("%d shoppers: %d orders, carts %s; shop pid %s, db connections %s, %d requests served"
          % (shoppers, sum(len(s["orders"]) for s in state["shoppers"].values()),
             [s["cart"] for s in state["shoppers"].values()], state["stats"]["pid"],
             state["stats"]["db_backend_pids"], state["stats"]["requests"]))


def verify(state_path):
    with open(state_path) as f:
        before = json.load(f)
    problems = []
    elapsed = time.time() - before["at"]
    for user, s in sorted(before["shoppers"].items()):
        c = Client()
        c.cookie = s["sid"]
        who = c.call("GET", "/whoami")
        if who["user"] != user:
            problems.append("%s: session now belongs to %s" % (user, who["user"]))
        # The TTL kept counting down through the migration; it was not reset, nor lost.
        if not (s["ttl"] - elapsed - 5 <= who["ttl"] <= s["ttl"]):
            problems.append("%s: session TTL %s, expected about %d" % (user, who["ttl"], s["ttl"] - elapsed))
        if c.call("GET", "/cart")["cart"] != s["cart"]:
            problems.append("%s: cart changed" % user)
        if c.call("GET", "/orders")["orders"] != s["orders"]:
            problems.append("%s: orders changed" % user)
    after = Client().call("GET", "/stats")
    b = before["stats"]
    if after["pid"] != b["pid"] or after["started"] != b["started"]:
        problems.append("the shop process restarted (pid %s -> %s)" % (b["pid"], after["pid"]))
    if after["db_backend_pids"] != b["db_backend_pids"]:
        problems.append("the shop's database connections changed: %s -> %s"
                        % (b["db_backend_pids"], after["db_backend_pids"]))
    if after["requests"] < b["requests"]:
        problems.append("the request counter went back: %d -> %d" % (b["requests"], after["requests"]))
    if after["ticks"] <= b["ticks"]:
        problems.append("the shop's timer stopped: %d -> %d" % (b["ticks"], after["ticks"]))
    print(json.dumps({"ok": not problems, "problems": problems, "stats_before": b, "stats_after": after},
                     indent=2))
    return 0 if not problems else 1


def soak(out_path, stop_file, max_seconds=600):
    """Requests over one kept-alive connection, as a user on the page would; none may fail."""
    c = Client(timeout=120)
    c.call("POST", "/login?user=soak")
    log = {"requests": 0, "errors": [], "max_latency_s": 0.0, "latencies": []}
    ports = []  # the client's local port, request by request: one port means one connection throughout
    deadline = time.time() + max_seconds
    while not os.path.exists(stop_file) and time.time() < deadline:
        t = time.time()
        try:
            c.call("POST", "/cart?item=tea&qty=1")
            log["requests"] += 1
            port = c.conn.sock.getsockname()[1] if c.conn.sock else None
            if not ports or ports[-1] != port:
                ports.append(port)
        except Exception as e:  # every failure is what the test is looking for
            log["errors"].append("%.3f %s: %s" % (t, type(e).__name__, e))
            c = Client(timeout=120)
            c.call("POST", "/login?user=soak")
        lat = time.time() - t
        log["latencies"].append(round(lat, 4))
        log["max_latency_s"] = max(log["max_latency_s"], lat)
        time.sleep(0.02)
    log["cart"] = c.call("GET", "/cart")["cart"]
    log["connections"] = len(ports)
    with open(out_path, "w") as f:
        json.dump(log, f)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("state")
    d.add_argument("--shoppers", type=int, default=5)
    v = sub.add_parser("verify")
    v.add_argument("state")
    s = sub.add_parser("soak")
    s.add_argument("out")
    s.add_argument("--stop", required=True)
    args = p.parse_args()
    if args.cmd == "drive":
        drive(args.state, args.shoppers)
    elif args.cmd == "verify":
        sys.exit(verify(args.state))
    else:
        soak(args.out, args.stop)


if __name__ == "__main__":
    main()
