"""ClientIds unique across every node that shares the Redis.

With loom_client_id_claim on, a connection's ClientId is claimed in Redis
(key loom:{c:<id>}, the owner as value, with a ttl that each worker
refreshes): a second connection with the id is refused with the same 409
on any node, the id is free again as soon as the connection closes, and a
node that dies leaves its ids to expire within the ttl.
"""

import os
import shutil
import signal
import socket
import threading
import time

import pytest

from conftest import wait_for
from relay import Relay
from wsclient import PING, PONG, ConnectionClosed, HandshakeError

TTL = 2.0
CLAIM = ("loom_client_id_claim on;\n"
         "    loom_client_id_claim_ttl %dms;\n"
         "    loom_client_id_claim_refresh %dms;"
         % (TTL * 1000, TTL * 1000 / 4))


def key(cid):
    return "loom:{c:%s}" % cid


def refused(n, cid):
    with pytest.raises(HandshakeError) as e:
        n.client(headers={"ClientId": cid})
    assert (e.value.status, e.value.body) == (409,
                                              b"client ID already exists\n")
    assert e.value.headers["content-type"] == "text/plain; charset=utf-8"


def try_client(n, cid):
    try:
        return n.client(headers={"ClientId": cid})
    except HandshakeError as e:
        assert e.status == 409, e
        return None


def works(c):
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["code"] == 200, r


def alive(c):
    """Open, without needing Redis: a ping gets its pong."""
    c.send_frame(PING, b"here?")
    f = c.recv_frame()
    assert (f.opcode, f.payload) == (PONG, b"here?"), f


def nodes(make_nginx, http=CLAIM, **kw):
    return make_nginx(http=http, **kw), make_nginx(http=http, **kw)


def test_an_id_held_on_one_node_is_refused_on_the_other(redis_server,
                                                        make_nginx):
    # a long ttl: the id comes free because the claim is deleted
    a, b = nodes(make_nginx, http="loom_client_id_claim on;\n"
                                  "    loom_client_id_claim_ttl 60s;")
    rc = redis_server.client()
    first = a.client(headers={"ClientId": "alice"})
    owner = rc.get(key("alice"))
    assert owner is not None
    assert 0 < rc.pttl(key("alice")) <= 60000

    refused(b, "alice")
    refused(a, "alice")
    # the refusals took nothing: the claim is the first connection's
    assert rc.get(key("alice")) == owner
    # other ids are not concerned, nor connections without one
    other = b.client(headers={"ClientId": "bob"})
    anon = b.client()
    works(first)
    works(other)
    works(anon)

    first.close()
    wait_for(lambda: rc.exists(key("alice")) == 0, timeout=10,
             what="the claim to be deleted on close")
    again = b.client(headers={"ClientId": "alice"})
    works(again)
    assert rc.get(key("alice")) not in (None, owner)
    refused(a, "alice")
    for c in (again, other, anon):
        c.close()


def test_assigned_ids_are_not_claimed(redis_server, make_nginx):
    a, _ = nodes(make_nginx)
    c = a.client()
    works(c)
    assert redis_server.client().keys("loom:{c:*") == []
    c.close()


def test_off_by_default_ids_are_per_node(redis_server, make_nginx):
    a, b = make_nginx(), make_nginx()
    x = a.client(headers={"ClientId": "same"})
    y = b.client(headers={"ClientId": "same"})
    works(x)
    works(y)
    assert redis_server.client().keys("loom:{c:*") == []
    x.close()
    y.close()


def test_a_killed_node_frees_its_ids_within_the_ttl(redis_server,
                                                    make_nginx):
    a, b = nodes(make_nginx)
    held = a.client(headers={"ClientId": "victim"})
    works(held)
    a.kill()
    wait_for(lambda: a.worker_pids() == [], what="node a to die")
    killed = time.monotonic()
    held.abort()

    # the claim outlives the node until its ttl runs out
    refused(b, "victim")
    c = wait_for(lambda: try_client(b, "victim"), timeout=TTL + 10,
                 what="the dead node's claim to expire")
    assert time.monotonic() - killed <= TTL + 2.0
    works(c)
    c.close()


def test_a_refreshed_claim_outlives_its_ttl(redis_server, make_nginx):
    a, b = nodes(make_nginx)
    rc = redis_server.client()
    held = a.client(headers={"ClientId": "steady"})
    owner = rc.get(key("steady"))
    start = time.monotonic()
    # three ttls: without the refresh the claim would be gone
    while time.monotonic() - start < 3 * TTL:
        assert rc.get(key("steady")) == owner
        time.sleep(0.1)
    refused(b, "steady")
    works(held)
    held.close()


def restart_empty(redis_server):
    redis_server.kill()
    for name in os.listdir(redis_server.dir):
        path = os.path.join(redis_server.dir, name)
        if name.startswith("appendonly"):
            shutil.rmtree(path, ignore_errors=True)
            if os.path.exists(path):
                os.unlink(path)
    redis_server.start()
    assert redis_server.client().dbsize() == 0


def test_claims_are_made_again_after_redis_lost_them(redis_server,
                                                     make_nginx):
    # refreshes far apart: the claim comes back because the link did
    a, b = nodes(make_nginx, http="loom_client_id_claim on;\n"
                                  "    loom_client_id_claim_ttl 60s;")
    rc = redis_server.client()
    held = a.client(headers={"ClientId": "phoenix"})
    owner = rc.get(key("phoenix"))

    restart_empty(redis_server)
    rc = redis_server.client()
    wait_for(lambda: rc.get(key("phoenix")) == owner, timeout=15,
             what="the claim to be made again")
    wait_for(a.redis_up, what="node a's links")
    wait_for(b.redis_up, what="node b's links")
    refused(b, "phoenix")
    works(held)
    held.close()


def test_redis_down_at_the_handshake(redis_server, make_nginx):
    a, b = nodes(make_nginx)
    redis_server.kill()
    wait_for(lambda: not a.redis_up() and not b.redis_up(),
             what="the links to go down")

    # the node's own check stands; the claims wait for Redis
    x = a.client(headers={"ClientId": "split"})
    refused(a, "split")
    y = b.client(headers={"ClientId": "split"})
    alive(x)
    alive(y)

    # back: both claim the id again, the first one keeps it and the
    # other connection is closed as its handshake would have been refused
    redis_server.start()
    rc = redis_server.client()
    wait_for(lambda: rc.exists(key("split")), timeout=15,
             what="the id to be claimed")

    def closed(c):
        try:
            f = c.recv_frame(timeout=0.2)
        except socket.timeout:
            return None
        return f

    lost = None
    deadline = time.monotonic() + 15
    while lost is None and time.monotonic() < deadline:
        for c in (x, y):
            f = closed(c)
            if f is not None:
                assert (f.close_code(), f.close_reason()) == (
                    4009, "client ID already exists"), f
                lost = c
                break
    assert lost is not None, "neither connection was closed"
    kept = y if lost is x else x
    works(kept)
    kept_node, other_node = (a, b) if kept is x else (b, a)
    refused(other_node, "split")
    lost.abort()
    kept.close()
    wait_for(lambda: rc.exists(key("split")) == 0, what="the claim to go")
    assert "is connected to another node now" in other_node.log()


def test_redis_too_slow_for_the_handshake(redis_server, make_nginx):
    a, b = nodes(make_nginx, http=CLAIM + "\n    loom_redis_timeout 1s;")
    rc = redis_server.client()
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        x = a.client(headers={"ClientId": "patient"}, timeout=10)
        waited = time.monotonic() - start
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # no answer within loom_redis_timeout: the handshake went on
    assert 0.8 <= waited < 5, waited
    alive(x)
    wait_for(a.redis_up, timeout=15, what="node a's links")
    wait_for(lambda: rc.exists(key("patient")), timeout=15,
             what="the id to be claimed")
    refused(b, "patient")
    x.close()


def test_a_client_that_leaves_during_the_claim(redis_server, make_nginx):
    a, b = nodes(make_nginx)
    rc = redis_server.client()
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        s = socket.create_connection(("127.0.0.1", a.port))
        s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "ClientId: leaver\r\n\r\n").encode())
        # the request waits for Redis: nothing comes back yet
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(100)
        s.close()
        wait_for(lambda: "client prematurely closed" in a.log(),
                 what="the node to see the client go")
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    # the claim made behind the client's back is deleted behind it
    wait_for(lambda: rc.exists(key("leaver")) == 0
             and a.status()["connections"] == 0, timeout=10,
             what="nothing left of the client")
    c = b.client(headers={"ClientId": "leaver"})
    works(c)
    c.close()


def test_concurrent_handshakes_one_wins(redis_server, make_nginx):
    a, b = nodes(make_nginx, workers=2)
    count = 24
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        n = (a, b)[i % 2]
        s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
        request = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "ClientId: contested\r\n\r\n").encode()
        barrier.wait()
        s.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(1000)
            if not chunk:
                break
            data += chunk
        results[i] = (int(data.split()[1]), s)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r[0] for r in results)
    assert codes == [101] + [409] * (count - 1), codes
    for _, s in results:
        s.close()
    rc = redis_server.client()
    wait_for(lambda: rc.exists(key("contested")) == 0,
             what="the winner's claim to go")


def lua(name):
    path = os.path.join(os.path.dirname(__file__), "..", "..",
                        "ngx_loom_module", "lua", name + ".lua")
    with open(path) as f:
        return f.read()


def test_the_claim_scripts_alone(redis_server):
    rc = redis_server.client()
    k = key("s")
    claim = lambda owner, stale="": rc.eval(lua("claim"), 1, k, owner,
                                            "5000", stale)
    unclaim = lambda owner: rc.eval(lua("unclaim"), 1, k, owner)

    assert claim("n1:1:1") == 1
    assert rc.get(k) == b"n1:1:1" and 0 < rc.pttl(k) <= 5000
    # the owner refreshes; another owner is told who holds it
    rc.pexpire(k, 100)
    assert claim("n1:1:1") == 1 and rc.pttl(k) > 100
    assert claim("n2:1:1") == b"n1:1:1"
    # only the stale owner named is replaced
    assert claim("n1:2:7", stale="n1:9:9") == b"n1:1:1"
    assert claim("n1:2:7", stale="n1:1:1") == 1
    assert rc.get(k) == b"n1:2:7"
    # a late release of the old owner leaves the new claim alone
    assert unclaim("n1:1:1") == 0
    assert rc.get(k) == b"n1:2:7"
    assert unclaim("n1:2:7") == 1
    assert rc.exists(k) == 0
    assert unclaim("n1:2:7") == 0
    # a claim Redis lost is made again by the refresh
    assert claim("n2:1:1") == 1
    rc.delete(k)
    assert claim("n2:1:1") == 1 and rc.get(k) == b"n2:1:1"


def test_a_late_release_on_the_same_node(redis_server, make_nginx):
    """Workers of one node: the id moves between them at once."""
    n = make_nginx(http=CLAIM, workers=2)
    rc = redis_server.client()
    seen = set()
    for i in range(20):
        c = n.client(headers={"ClientId": "mover"})
        works(c)
        seen.add(rc.get(key("mover")))
        c.close()
    # every connection had its own claim, none was refused
    assert len(seen) == 20 and None not in seen
    wait_for(lambda: rc.exists(key("mover")) == 0, what="the last claim")


def test_a_killed_worker_leaves_its_claims_to_its_node(redis_server,
                                                       make_nginx):
    # a long ttl: the id is free again because the node takes it over
    http = ("loom_client_id_claim on;\n"
            "    loom_client_id_claim_ttl 60s;")
    n = make_nginx(http=http, workers=1, allowed_log=r"exited on signal 9")
    other = make_nginx(http=http)
    rc = redis_server.client()
    c = n.client(headers={"ClientId": "orphan"})
    owner = rc.get(key("orphan"))
    (pid,) = n.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(n.worker_pids()) == 1
             and pid not in n.worker_pids(), what="a new worker")
    c.abort()
    wait_for(n.redis_up, what="the new worker's links")

    # the dead worker's claim is still there: another node refuses the id
    assert rc.get(key("orphan")) == owner
    refused(other, "orphan")
    # its own node knows the worker is gone, and takes the claim over
    again = n.client(headers={"ClientId": "orphan"})
    works(again)
    assert rc.get(key("orphan")) not in (None, owner)
    assert "left over, taking it over" in n.log()
    refused(other, "orphan")
    again.close()


def test_a_request_terminated_during_the_claim(redis_server, make_nginx):
    # a mirror subrequest that answers 444 terminates the main request
    # while it waits for the claim's answer (or right after the 101)
    n = make_nginx(http=CLAIM,
                   server="location = /m { internal; return 444; } "
                          "location = /plain { loom; }",
                   location="mirror /m;")
    rc = redis_server.client()
    for i in range(5):
        try:
            c = n.client(headers={"ClientId": "cut"})
            c.expect_eof(timeout=10)
        except (ConnectionError, OSError, HandshakeError, ConnectionClosed):
            pass
    wait_for(lambda: n.status()["connections"] == 0
             and rc.exists(key("cut")) == 0,
             what="the gauge to come back and the claim to go")
    c = n.client(path="/plain", headers={"ClientId": "cut"})
    works(c)
    assert rc.exists(key("cut")) == 1
    c.close()
    assert "signal 11" not in n.log()


def test_quit_while_the_handshake_waits_for_its_claim(redis_server,
                                                      make_nginx):
    """A graceful shutdown while a handshake waits for its claim's answer:
    the old worker stays until the answer is in, the handshake ends as
    every connection of a worker that goes does (101, then 1001), and no
    connection is left open behind the worker (nginx's "open socket
    left" alert)."""
    relay = Relay(redis_server.port)
    try:
        n = make_nginx(redis_port=relay.port, http=CLAIM)
        wait_for(n.redis_up, what="the links")
        rc = redis_server.client()
        # Redis takes the claim, its answer waits in the relay
        relay.freeze(down=True)
        got = {}

        def connect():
            try:
                got["client"] = n.client(headers={"ClientId": "quitter"},
                                         timeout=10)
            except Exception as e:   # noqa: BLE001 (the test reports it)
                got["error"] = e

        t = threading.Thread(target=connect)
        t.start()
        wait_for(lambda: rc.exists(key("quitter")),
                 what="the claim to reach Redis")
        os.kill(n.master, signal.SIGQUIT)
        wait_for(lambda: "gracefully shutting down" in n.log(),
                 what="the worker to start shutting down")
        relay.thaw()
        t.join(15)
        assert "error" not in got, got
        c = got["client"]
        f = c.expect_close()
        assert (f.close_code(), f.close_reason()) == (
            1001, "server shutting down")
        c.abort()
        wait_for(lambda: not n.worker_pids(), what="the workers to exit")
        assert "open socket" not in n.log()
    finally:
        relay.close()
