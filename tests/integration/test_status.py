"""The loom_status location.

Its JSON document field by field (the exact set of fields and values after
a known sequence of requests), counts over every worker of the node, the
state of each worker's Redis links, counters kept across a reload, and the
HTTP side (GET and HEAD only, application/json).
"""

import json
import urllib.error
import urllib.request

from conftest import (answer, clients_on_workers, register, subscribe,
                      wait_for)




def expected(n, workers=None, **counts):
    doc = {"version": "0.1.0", "workers": 1, "connections": 0,
           "connections_total": 0, "messages": 0, "publishes": 0,
           "sends": 0, "deliveries": 0, "rejected": 0, "errors": 0,
           "slow_consumers": 0, "protocol_errors": 0, "subscriptions": 0,
           "topics_subscribed": 0, "topics": {},
           "redis": {"address": "127.0.0.1:%d" % n.redis_port,
                     "reconnects": 0,
                     "workers": workers or [
                         {"pid": n.worker_pids()[0], "redis_command": "up",
                          "redis_subscriber": "up", "connections": 0}]}}
    doc.update(counts)
    return doc


BOUNDS = ["500", "1000", "2500", "5000", "10000", "25000", "50000",
          "100000", "250000", "500000", "1000000", "2500000", "5000000",
          "10000000", "+Inf"]


def counters(n, delivered=None):
    """The status without its latency histograms, which are checked here:
    cumulative buckets ending at the count; publish_delivery's count is
    `delivered` when given."""
    st = n.status()
    for name in ("publish_ack", "publish_delivery"):
        h = st.pop(name)
        assert sorted(h) == ["count", "le_us", "sum_us"]
        counts = [h["le_us"][b] for b in BOUNDS]
        assert sorted(h["le_us"]) == sorted(BOUNDS)
        assert counts == sorted(counts) and counts[-1] == h["count"]
        assert h["sum_us"] >= 0
    if delivered is not None:
        assert h["count"] == delivered
    return st


def test_fresh_node(nginx):
    assert counters(nginx, delivered=0) == expected(nginx)


def test_counters(nginx):
    a = nginx.client()
    b = nginx.client()
    pid = nginx.worker_pids()[0]
    register(a, "t", {"n": None})                                # 1
    register(a, "u", {"n": None})                                # 2
    subscribe(b, "t")                                            # 3
    a.send_json({"id": "p", "action": "publish", "topic": "t",  # 4
                 "data": {"n": 1}, "requireAck": True})
    assert a.recv_json() == answer("p", "publish")
    assert b.recv_json()["id"] == "p"
    a.send_json({"id": "s", "action": "sendWithoutSave",        # 5
                 "topic": "t", "data": {"n": 2}, "requireAck": True})
    assert a.recv_json() == answer("s", "sendWithoutSave")
    assert b.recv_json()["id"] == "s"
    # 400s: rejected
    r = a.request({"id": "x", "action": "publish", "topic": "t",  # 6
                   "data": {"m": 1}})
    assert r["code"] == 400
    b.send_text("nonsense")                                      # 7
    assert b.recv_json()["code"] == 400
    r = b.request({"id": "x", "action": "shout"})                # 8
    assert r["code"] == 400
    # 500s: errors
    r = a.request({"id": "x", "action": "get", "topic": "nope"})  # 9
    assert r["code"] == 500
    r = a.request({"id": "x", "action": "subscribe",             # 10
                   "topic": "nope"})
    assert r["code"] == 500
    subscribe(a, "t")                                            # 11
    subscribe(a, "u")                                            # 12
    a.send_json({"id": "p2", "action": "publish", "topic": "t",  # 13
                 "data": {"n": 3}})
    assert a.recv_json()["id"] == "p2"
    assert b.recv_json()["id"] == "p2"
    # a protocol error
    c = nginx.client()
    c.send_frame(1, "{}", mask=False)
    c.expect_close(1002)
    c.abort()
    wait_for(lambda: nginx.status()["connections"] == 2,
             what="the broken connection to go")
    assert counters(nginx, delivered=2) == expected(
        nginx, connections=2, connections_total=3, messages=13,
        publishes=2, sends=1, deliveries=4, rejected=3, errors=2,
        protocol_errors=1, subscriptions=3, topics_subscribed=2,
        topics={"t": 2, "u": 1},
        workers=[{"pid": pid, "redis_command": "up",
                  "redis_subscriber": "up", "connections": 2}])
    a.close()
    b.close()
    wait_for(lambda: nginx.status()["connections"] == 0,
             what="the connections to go")
    assert counters(nginx, delivered=2) == expected(
        nginx, connections=0, connections_total=3, messages=13,
        publishes=2, sends=1, deliveries=4, rejected=3, errors=2,
        protocol_errors=1)


def test_counts_are_node_wide(make_nginx):
    n = make_nginx(workers=2)
    pids = n.worker_pids()
    by_pid = clients_on_workers(n, per_worker=2, keep_all=True)
    clients = [c for p in pids for c in by_pid[p]]
    register(clients[0], "t", {})
    register(clients[0], "u", {})
    for c in clients:
        subscribe(c, "t")
    for c in by_pid[pids[1]]:
        subscribe(c, "u")
    clients[0].send_json({"id": "p", "action": "publish", "topic": "t",
                          "data": {}})
    for c in clients:
        assert c.recv_json()["id"] == "p"
    st = n.status()
    total = len(clients)
    assert st["workers"] == 2
    assert st["connections"] == total
    assert st["connections_total"] == total
    assert st["subscriptions"] == total + len(by_pid[pids[1]])
    assert st["topics"] == {"t": total, "u": len(by_pid[pids[1]])}
    assert st["topics_subscribed"] == 2
    assert st["deliveries"] == total
    assert st["publishes"] == 1
    assert st["messages"] == 2 + 1 + total + len(by_pid[pids[1]])
    assert sorted(st["redis"]["workers"], key=lambda w: w["pid"]) == [
        {"pid": p, "redis_command": "up", "redis_subscriber": "up",
         "connections": len(by_pid[p])} for p in pids]
    for c in clients:
        c.close()


def test_counters_survive_reload(nginx):
    a = nginx.client()
    register(a, "t", {})
    subscribe(a, "t")
    a.send_json({"id": "p", "action": "publish", "topic": "t", "data": {}})
    assert a.recv_json()["id"] == "p"
    a.close()
    wait_for(lambda: nginx.status()["connections"] == 0,
             what="the connection to go")
    old = nginx.worker_pids()
    nginx.reload()
    wait_for(lambda: len(nginx.worker_pids()) == 1
             and nginx.worker_pids() != old
             and [w["pid"] for w in nginx.status()["redis"]["workers"]]
             == nginx.worker_pids(), what="only the new worker to report")
    st = counters(nginx, delivered=1)
    assert st == expected(nginx, connections_total=1, messages=3,
                          publishes=1, deliveries=1)


def test_redis_links_in_status(redis_server, nginx):
    redis_server.kill()

    def links():
        w = nginx.status()["redis"]["workers"][0]
        return (w["redis_command"], w["redis_subscriber"])

    wait_for(lambda: links()[0] != "up" and links()[1] != "up",
             what="the links to go down")
    assert set(links()) <= {"down", "connecting"}
    redis_server.start()
    wait_for(lambda: links() == ("up", "up"), what="the links to come back")
    assert nginx.status()["redis"]["reconnects"] >= 2


def test_http_methods_and_type(nginx):
    url = "http://127.0.0.1:%d/status" % nginx.port
    with urllib.request.urlopen(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        body = r.read()
    assert body.endswith(b"}\n") and body.count(b"\n") == 1
    assert json.loads(body)["version"] == "0.1.0"
    req = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
        assert r.read() == b""
    req = urllib.request.Request(url, data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405
