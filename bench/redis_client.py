"""A Redis client for the memory bench: one connection kept open through the migration, reading random keys and
incrementing a counter, each request timed. Writes {requests, errors, max_latency_s, p99_s, samples: [[when, seconds]]} as JSON when
the stop file appears.

    python3 redis_client.py HOST KEYS OUT.json STOP_FILE
"""

import json
import os
import random
import socket
import sys
import time


def command(sock, reader, *args):
    sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    line = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    if line[:1] == b"$":
        n = int(line[1:])
        if n >= 0:
            reader.read(n + 2)
    elif line[:1] == b"-":
        raise RuntimeError(line.decode().strip())
    return line


def main(host, keys, out, stop):
    keys = int(keys)
    latencies, errors, during = [], [], []
    sock = socket.create_connection((host, 6379), timeout=120)
    reader = sock.makefile("rb")
    started = time.time()
    while not os.path.exists(stop):
        t = time.time()
        try:
            command(sock, reader, b"GET", b"key:%d" % random.randrange(keys))
            command(sock, reader, b"INCR", b"bench:counter")
        except Exception as e:  # pylint: disable=broad-except
            errors.append("%.3f %s" % (t - started, e))
            sock.close()
            time.sleep(0.2)
            try:
                sock = socket.create_connection((host, 6379), timeout=120)
                reader = sock.makefile("rb")
            except OSError:
                pass
            continue
        latencies.append((t, time.time() - t))
        time.sleep(0.002)
    lat = sorted(x[1] for x in latencies)
    with open(out, "w") as f:
        json.dump({"requests": len(lat), "errors": errors, "max_latency_s": lat[-1] if lat else None,
                   "p99_s": lat[int(len(lat) * 0.99)] if lat else None,
                   "samples": [(round(a, 4), round(b, 5)) for a, b in latencies]}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
