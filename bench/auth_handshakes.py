#!/usr/bin/python3
"""Handshakes per second of one nginx worker with a token credential.

    bench/auth_handshakes.py [seconds] [clients]

Starts redis-server and nginx (one worker) from the test harness of
tests/integration, then, for each configuration (no credential, an
HS256 token, an RS256 token, an ES256 token), runs `clients` processes
that each open a WebSocket with the token in Authorization, read the
101, and close it, as fast as they can, for `seconds`.  Prints
handshakes/s per configuration.  The clients run on the same machine
and take CPU from the worker: the numbers are a lower bound.
"""

import base64
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from authtools import SECRET, ECKey, RSAKey, claims, hs256, write  # noqa
from conftest import Nginx, Redis  # noqa


def hammer(port, token, seconds, out):
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: %s\r\n%s\r\n"
           % (key, "Authorization: Bearer %s\r\n" % token if token else ""))
    req = req.encode()
    close = b"\x88\x82abcd" + bytes(a ^ b for a, b in
                                    zip(b"\x03\xe8", b"ab"))
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"HTTP/1.1 101"), buf[:100]
        s.sendall(close)
        while s.recv(4096):
            pass
        s.close()
        n += 1
    out.put(n)


def run(n, token, seconds, clients):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=hammer,
                                  args=(n.port, token, seconds, q))
          for _ in range(clients)]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    return total / seconds


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    d = tempfile.mkdtemp(prefix="loom-authbench-")
    redis = Redis(os.path.join(d, "redis")).start()
    rsa, ec = RSAKey(), ECKey()
    cases = [
        ("none", "", None),
        ("HS256", "loom_jwt HS256 %s;" % write(os.path.join(d, "hs"),
                                               SECRET), hs256),
        ("RS256", "loom_jwt RS256 %s;" % write(os.path.join(d, "rs"),
                                               rsa.public_pem), rsa.sign),
        ("ES256", "loom_jwt ES256 %s;" % write(os.path.join(d, "es"),
                                               ec.public_pem), ec.sign),
    ]
    try:
        for name, loc, sign in cases:
            n = Nginx(os.path.join(d, name), redis.port, workers=1,
                      location=loc, log_level="notice").start()
            try:
                tok = sign(claims(sub=None, ttl=3600)) if sign else ""
                rate = run(n, tok, seconds, clients)
                print("%-6s %8.0f handshakes/s (1 worker, %d clients)"
                      % (name, rate, clients), flush=True)
            finally:
                n.stop()
    finally:
        redis.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
