#!/usr/bin/python3
"""What one stored publish costs Redis, in instructions, by group size.

    bench/append_cost.py [--groups 1,4,16] [--history 1000] [--old FILE]

For each group size k, a private redis-server (AOF on, appendfsync
everysec) runs under `valgrind --tool=callgrind` twice: once for N1 and
once for N2 publishes, sent as EVALSHA calls of ngx_loom_module/lua/
append.lua with k messages each, the arguments the module sends, and a
200-byte delivery that changes from message to message.  The difference
of the two runs' instruction counts over N2 - N1 is the cost of one
publish, without the server's start and end: exact and repeatable, where
wall-clock times on a shared machine are not.  With --old FILE, FILE is
measured too, as an append.lua of the one-message layout (before group
commits).  --history 0 measures a topic without history.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LUA = os.path.join(ROOT, "ngx_loom_module", "lua")
P = "loom:"
NAME = "bench"
HASH = P + "{t:%s}" % NAME
STREAM = HASH + ":h"
CHANNEL = HASH + ":msg"


def text(path):
    with open(path) as f:
        return f.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def delivery(i):
    data = '{"n":%d,"pad":"%s"}' % (i, "x" * 120)
    d = ('{"id":"%d","action":"publish","topic":"%s","data":%s,'
         '"senderId":"s-%d"}\n' % (i, NAME, data, i))
    d = d + " " * max(0, 200 - len(d))
    # the data's offset: 1-based for the old layout, 0-based now
    return d, d.index('"data":') + 7, len(data)


def run(script, old, k, publishes, history):
    work = tempfile.mkdtemp(prefix="append-cost-")
    port = free_port()
    out = os.path.join(work, "callgrind.out")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
         "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", work, "--save", "", "--appendonly", "yes",
         "--appendfsync", "everysec"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port, socket_timeout=120)
        for _ in range(600):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        r.eval(text(os.path.join(LUA, "register.lua")), 3, HASH,
               P + "topics", STREAM, NAME, '{"n":null,"pad":null}', "reg1",
               str(history), "", "")
        tag = r.hget(HASH, "tag").decode()
        sha = r.script_load(script)
        sent = 0
        while sent < publishes:
            pipe = r.pipeline(transaction=False)
            for _ in range(50):
                if sent >= publishes:
                    break
                if old:
                    d, o, n = delivery(sent)
                    pipe.evalsha(sha, 2, HASH, STREAM, tag, "1", d, o + 1,
                                 n, CHANNEL, history, 0, 64)
                    sent += 1
                    continue
                args = [CHANNEL, history, 0, 64]
                for _ in range(k):
                    d, o, n = delivery(sent)
                    args += [tag, "1", d, o, n]
                    sent += 1
                pipe.evalsha(sha, 2, HASH, STREAM, *args)
            for got in pipe.execute():
                assert isinstance(got, list), got
        assert int(r.hget(HASH, "rev")) == publishes
        if history:
            # the newest entry ends at the last revision (one entry per
            # call: "<rev>-0", or "<last rev>-<k>" for a group)
            newest = r.xrevrange(STREAM, count=1)[0][0]
            assert int(newest.split(b"-")[0]) == publishes, newest
        else:
            assert r.xlen(STREAM) == 0
        try:
            r.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        proc.wait(timeout=600)
        total = 0
        for f in glob.glob(out + "*"):
            for line in open(f):
                if line.startswith("summary:") or line.startswith("totals:"):
                    total = max(total, int(line.split()[1]))
        return total
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", default="1,4,16")
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--n1", type=int, default=1600)
    ap.add_argument("--n2", type=int, default=4160)
    ap.add_argument("--old", help="an append.lua of one message a call")
    a = ap.parse_args()

    cases = []
    if a.old:
        cases.append(("old", text(a.old), True, 1))
    for k in a.groups.split(","):
        cases.append(("k=%s" % k, text(os.path.join(LUA, "append.lua")),
                      False, int(k)))
    for name, script, old, k in cases:
        i1 = run(script, old, k, a.n1, a.history)
        i2 = run(script, old, k, a.n2, a.history)
        per = (i2 - i1) / (a.n2 - a.n1)
        print("%-6s history %-5d %8.0f instructions per publish"
              % (name, a.history, per))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
