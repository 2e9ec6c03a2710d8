"""Fan-out across workers and nodes, and one order for everybody.

Two workers of one nginx, and two nginx nodes sharing one Redis: a publish
on any worker or node reaches the subscribers on all of them; a schema
change or an unregister on one is in force on the others; ClientIds are
unique per node; and with several publishers publishing concurrently to
one topic, every subscriber on every worker and node receives every
message exactly once, all in the same order, each publisher's messages in
the order it sent them.
"""

import json

from conftest import (answer, clients_on_workers, register, subscribe,
                      wait_for, worker_connections)
from wsclient import encode_frame








def test_two_workers_deliver_to_each_other(make_nginx):
    n = make_nginx(workers=2)
    by_worker = clients_on_workers(n, per_worker=2)
    (wa, (a1, a2)), (wb, (b1, b2)) = sorted(by_worker.items())
    register(a1, "t", {"n": None})
    for c in (a2, b2):
        subscribe(c, "t")
    st = n.status()
    assert st["topics"] == {"t": 2}
    assert st["connections"] == 4
    assert worker_connections(n) == {wa: 2, wb: 2}
    for i, pub in enumerate((a1, b1, a2, b2)):
        pub.send_json({"id": "p%d" % i, "action": "publish", "topic": "t",
                       "data": {"n": i}})
        if pub in (a2, b2):
            # a subscribed publisher gets its own delivery
            d = pub.recv_json()
            assert (d["id"], d["data"]) == ("p%d" % i, {"n": i})
        pub.send_json({"id": "x", "action": "listTopics"})
        assert pub.recv_json()["id"] == "x"
        for c in (a2, b2):
            if c is pub:
                continue
            d = c.recv_json()
            assert (d["id"], d["data"]) == ("p%d" % i, {"n": i})
    for c in (a1, a2, b1, b2):
        c.close()


def test_schema_change_is_in_force_on_every_worker_and_node(make_nginx):
    n1 = make_nginx(workers=2)
    n2 = make_nginx()
    (_, (a,)), (_, (b,)) = sorted(clients_on_workers(n1).items())
    c = n2.client()
    register(a, "t", {"old": None})
    # every worker and node caches the schema by publishing once
    for i, x in enumerate((a, b, c)):
        r = x.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"old": i}, "requireAck": True})
        assert r == answer("p", "publish")
    r = b.request({"id": "u", "action": "updateSchema", "topic": "t",
                   "data": {"new": None}, "requireAck": True})
    assert r == answer("u", "updateSchema")
    for x in (a, b, c):
        r = x.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"old": 9}, "requireAck": True})
        assert r == answer("p", "publish", 400,
                           "schema doesn't match topics current schema")
        r = x.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"new": 9}, "requireAck": True})
        assert r == answer("p", "publish")
    # unregistered on one node: gone on the other, and registered anew
    r = c.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")
    for x in (a, b):
        r = x.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"new": 1}, "requireAck": True})
        assert r == answer("p", "publish", 400,
                           "could not get topic by name: t")
    register(c, "t", {"third": None})
    for x in (a, b):
        r = x.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"third": 1}, "requireAck": True})
        assert r == answer("p", "publish")
    for x in (a, b, c):
        x.close()


def test_two_nodes_share_one_redis(make_nginx):
    n1 = make_nginx()
    n2 = make_nginx()
    a = n1.client(headers={"ClientId": "same"})
    # ClientIds are unique per node
    b = n2.client(headers={"ClientId": "same"})
    register(b, "t", {"n": None})
    register(b, "u", {"n": None})
    r = a.request({"id": "l", "action": "listTopics"})
    assert [t["name"] for t in r["data"]] == ["t", "u"]
    subscribe(b, "t")
    subscribe(b, "u")
    a.send_json({"id": "p1", "action": "publish", "topic": "t",
                 "data": {"n": 1}, "requireAck": True})
    assert a.recv_json() == answer("p1", "publish")
    assert b.recv_json() == {"id": "p1", "action": "publish", "topic": "t",
                             "data": {"n": 1}, "senderId": "same"}
    assert n1.status()["topics"] == {}
    assert n2.status()["topics"] == {"t": 1, "u": 1}
    # unregistered on node 1: node 2's subscribers are dropped silently
    r = a.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")
    wait_for(lambda: n2.status()["topics"] == {"u": 1},
             what="node 2 to drop the subscription")
    register(a, "t", {"n": None})
    a.send_json({"id": "p2", "action": "publish", "topic": "t",
                 "data": {"n": 2}, "requireAck": True})
    assert a.recv_json() == answer("p2", "publish")
    a.send_json({"id": "p3", "action": "publish", "topic": "u",
                 "data": {"n": 3}, "requireAck": True})
    assert a.recv_json() == answer("p3", "publish")
    d = b.recv_json()
    assert (d["id"], d["topic"]) == ("p3", "u")
    a.close()
    b.close()


def test_one_order_for_every_subscriber(make_nginx):
    n1 = make_nginx(workers=2)
    n2 = make_nginx(workers=2)
    w1 = clients_on_workers(n1, per_worker=3)
    w2 = clients_on_workers(n2, per_worker=2)
    (_, g1), (_, g2) = sorted(w1.items())
    (_, g3), (_, g4) = sorted(w2.items())
    # one publisher on each worker of node 1 and one on node 2
    publishers = [g1[0], g2[0], g3[0]]
    subscribers = g1[1:] + g2[1:] + g3[1:] + g4
    register(publishers[0], "t", {"p": None, "i": None})
    for s in subscribers:
        subscribe(s, "t")
    count = 200
    frames = [[encode_frame(1, json.dumps({
        "id": "%d-%d" % (k, i), "action": "publish", "topic": "t",
        "data": {"p": k, "i": i}, "requireAck": True}))
        for i in range(count)] for k in range(len(publishers))]
    # round by round, one frame per publisher: the three connections race
    # to Redis from three workers on two nodes
    for i in range(count):
        for k, p in enumerate(publishers):
            p.send_raw(frames[k][i])
    acks = [[p.recv_json()["id"] for _ in range(count)]
            for p in publishers]
    for k in range(len(publishers)):
        assert acks[k] == ["%d-%d" % (k, i) for i in range(count)]
    total = count * len(publishers)
    orders = []
    for s in subscribers:
        got = [s.recv_json() for _ in range(total)]
        assert all(d["topic"] == "t" and d["action"] == "publish"
                   for d in got)
        orders.append([d["id"] for d in got])
    first = orders[0]
    # every message exactly once, each publisher's in its order
    assert sorted(first) == sorted("%d-%d" % (k, i)
                                   for k in range(len(publishers))
                                   for i in range(count))
    for k in range(len(publishers)):
        mine = [x for x in first if x.startswith("%d-" % k)]
        assert mine == ["%d-%d" % (k, i) for i in range(count)]
    # and the publishers were really interleaved
    assert first != sorted(first, key=lambda x: tuple(map(int,
                                                          x.split("-"))))
    for o in orders[1:]:
        assert o == first
    # nothing more came
    for s in subscribers:
        s.send_json({"id": "end", "action": "listTopics"})
        assert s.recv_json()["id"] == "end"
    assert n1.status()["deliveries"] == total * 4
    assert n2.status()["deliveries"] == total * 3
    for c in publishers + subscribers:
        c.close()
