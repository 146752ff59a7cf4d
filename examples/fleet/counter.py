#!/usr/bin/env python3
"""A client of the fleet demo's sessions stack: one connection to Redis (as the ACL user shop, its
password in REDIS_PASSWORD), INCR back to back until a stop file appears; what it saw goes to a JSON file.

    counter.py ADDRESS OUT --stop FILE
"""

import argparse
import json
import os
import socket
import time


def command(sock, reader, *args):
    sock.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)).encode())
    line = reader.readline()
    if line[:1] in (b"-", b""):
        raise ValueError(line.decode(errors="replace").strip() or "connection closed")
    return line[1:].strip().decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("out")
    p.add_argument("--stop", required=True)
    a = p.parse_args()
    sock = socket.create_connection((a.address, 6379), timeout=60)
    reader = sock.makefile("rb")
    command(sock, reader, "AUTH", "shop", os.environ["REDIS_PASSWORD"])
    values, errors, slowest = [], [], 0.0
    while not os.path.exists(a.stop):
        t = time.time()
        try:
            values.append(int(command(sock, reader, "INCR", "fleet:counter")))
        except (OSError, ValueError) as e:
            errors.append(repr(e))
            break
        slowest = max(slowest, time.time() - t)
        time.sleep(0.05)
    in_order = values == list(range(values[0], values[0] + len(values))) if values else False
    with open(a.out, "w") as f:
        json.dump({"requests": len(values), "errors": errors, "max_latency_s": slowest, "in_order": in_order,
                   "connections": 1, "last": values[-1] if values else None}, f)


if __name__ == "__main__":
    main()
