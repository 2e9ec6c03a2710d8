"""Redis down and back.

While Redis is down every request that needs it gets an immediate 500
("storage unavailable: ..."), requests that do not need it still work,
WebSocket sessions stay open; requests in flight when the link drops are
answered too; once Redis is back (same port and directory, AOF) the
workers reconnect by themselves and subscribe their channels again, so
the subscribers that were there all along get deliveries again without
reconnecting, on every worker.
"""

import time

from conftest import (answer, clients_on_workers, register, subscribe,
                      wait_for)
from wsclient import PING, PONG

DOWN = "storage unavailable: not connected to redis"
LOST = "storage unavailable: connection to redis lost"




def resp(*args):
    """A command as Redis receives it."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def channel_subscribers(redis_server, topic):
    rc = redis_server.client()
    try:
        return rc.pubsub_numsub("loom:{t:%s}:msg" % topic)[0][1]
    finally:
        rc.close()


def links_down(n):
    return all(w["redis_command"] != "up" and w["redis_subscriber"] != "up"
               for w in n.status()["redis"]["workers"])






def test_requests_fail_fast_and_sessions_survive(redis_server, make_nginx):
    n = make_nginx(workers=2)
    (_, (a1, a2)), (_, (b1, b2)) = sorted(clients_on_workers(n, 2).items())
    register(a1, "t", {"n": None})
    register(a1, "other", {"n": None})
    for s in (a2, b2):
        subscribe(s, "t")
    # a1 and b1 know the schema of t
    for p in (a1, b1):
        r = p.request({"id": "p", "action": "publish", "topic": "t",
                       "data": {"n": 0}, "requireAck": True})
        assert r == answer("p", "publish")
    for s in (a2, b2):
        assert s.recv_json()["data"] == {"n": 0}
        assert s.recv_json()["data"] == {"n": 0}

    redis_server.kill()
    wait_for(lambda: links_down(n), what="the links to go down")

    needs_redis = [
        ("publish", {"topic": "t", "data": {"n": 1}}),
        ("sendWithoutSave", {"topic": "t", "data": {"n": 1}}),
        ("publish", {"topic": "other", "data": {"n": 1}}),
        ("listTopics", {}),
        ("registerTopic", {"topic": "x", "data": {}}),
        ("updateSchema", {"topic": "t", "data": {"m": None}}),
        ("unregisterTopic", {"topic": "t"}),
        ("subscribe", {"topic": "other"}),
        ("subscribe", {"topic": "t"}),
        ("unsubscribe", {"topic": "other"}),
    ]
    for c in (a1, b1, a2):
        for action, extra in needs_redis:
            m = dict(extra, id="r", action=action)
            start = time.monotonic()
            r = c.request(m)
            assert r == answer("r", action, 500, DOWN), (action, r)
            assert time.monotonic() - start < 1
        r = c.request({"id": "g", "action": "get", "topic": "t"})
        assert r == answer("g", "get", 500, "couldn't get value for topic "
                           "with error: not connected to redis")
    # even subscribing again needs Redis: the topic may be gone
    r = a2.request({"id": "s", "action": "subscribe", "topic": "t",
                    "requireAck": True})
    assert r == answer("s", "subscribe", 500, DOWN)
    # what needs no Redis still works
    # (a message that does not match the cached schema is checked against
    # the current one, in Redis: no answer without it)
    r = a1.request({"id": "p", "action": "publish", "topic": "t",
                    "data": {"wrong": 1}})
    assert r == answer("p", "publish", 500, DOWN)
    r = a1.request({"id": "p", "action": "publish", "topic": "t",
                    "data": [1]})
    assert r == answer("p", "publish", 400, "json: cannot unmarshal array "
                       "into Go value of type map[string]interface {}")
    r = a1.request({"id": "g", "action": "get", "topic": " "})
    assert r == answer("g", "get", 400, "no topic provided")
    r = a1.request({"id": "u", "action": "unsubscribeAll",
                    "requireAck": True})
    assert r == answer("u", "unsubscribeAll")
    for c in (a1, a2, b1, b2):
        c.send_frame(PING, b"still there?")
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (PONG, b"still there?")
    st = n.status()
    assert st["connections"] == 4
    assert st["topics"] == {"t": 2}

    redis_server.start()
    wait_for(n.redis_up, what="the links to come back")
    assert n.status()["redis"]["reconnects"] >= 4
    # each worker subscribes its channel again
    wait_for(lambda: channel_subscribers(redis_server, "t") == 2,
             what="the channel to be subscribed again")
    # the subscribers that stayed get deliveries again, from either worker
    for i, p in enumerate((a1, b1)):
        r = p.request({"id": "p%d" % i, "action": "publish", "topic": "t",
                       "data": {"n": 10 + i}, "requireAck": True})
        assert r == answer("p%d" % i, "publish")
        for s in (a2, b2):
            d = s.recv_json()
            assert (d["id"], d["data"]) == ("p%d" % i, {"n": 10 + i})
    # and everything else works again, with the state AOF kept
    r = b1.request({"id": "g", "action": "get", "topic": "t"})
    assert r == answer("g", "get", data={"n": 11})
    r = b1.request({"id": "l", "action": "listTopics"})
    assert [t["name"] for t in r["data"]] == ["other", "t"]
    for c in (a1, a2, b1, b2):
        c.close()


def test_requests_in_flight_when_redis_dies(redis_server, nginx):
    c = nginx.client()
    register(c, "t", {"n": None})
    register(c, "other", {"n": None})
    r = c.request({"id": "p", "action": "publish", "topic": "t",
                   "data": {"n": 1}, "requireAck": True})
    assert r == answer("p", "publish")
    rc = redis_server.client()
    # Redis holds scripts back; the publish waits there, the get behind it
    # (of another topic: one of the same topic waits for the publish)
    rc.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
    c.send_json({"id": "p2", "action": "publish", "topic": "t",
                 "data": {"n": 2}, "requireAck": True})
    c.send_json({"id": "g", "action": "get", "topic": "other"})
    c.send_json({"id": "l", "action": "listTopics"})
    behind = len(resp("HMGET", "loom:{t:other}", "sv", "value")
                 + resp("HSCAN", "loom:topics", "0", "COUNT", "1000"))
    wait_for(lambda: any("b" in cl["flags"] and int(cl["qbuf"]) == behind
                         for cl in rc.client_list()),
             what="the publish to wait in Redis, the rest behind it")
    rc.close()
    redis_server.kill()
    assert c.recv_json() == answer("p2", "publish", 500, LOST)
    assert c.recv_json() == answer(
        "g", "get", 500, "couldn't get value for topic with error: "
        "connection to redis lost")
    assert c.recv_json() == answer("l", "listTopics", 500, LOST)
    redis_server.start()
    wait_for(nginx.redis_up, what="the links to come back")
    # the publish that failed was not stored
    r = c.request({"id": "g", "action": "get", "topic": "t"})
    assert r == answer("g", "get", data={"n": 1})
    c.close()


def test_subscribe_after_redis_came_back(redis_server, nginx):
    a = nginx.client()
    register(a, "t", {"n": None})
    redis_server.kill()
    wait_for(lambda: links_down(nginx), what="the links to go down")
    r = a.request({"id": "s", "action": "subscribe", "topic": "t"})
    assert r == answer("s", "subscribe", 500, DOWN)
    assert nginx.status()["subscriptions"] == 0
    redis_server.start()
    wait_for(nginx.redis_up, what="the links to come back")
    subscribe(a, "t")
    b = nginx.client()
    r = b.request({"id": "p", "action": "publish", "topic": "t",
                   "data": {"n": 1}, "requireAck": True})
    assert r == answer("p", "publish")
    assert a.recv_json()["id"] == "p"
    a.close()
    b.close()
