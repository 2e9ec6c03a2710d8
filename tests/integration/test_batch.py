"""Group commits: the publishes of one topic that a worker receives one
after the other go to Redis as one append.lua call
(ngx_http_loom_store_batch.c), and nothing a client sees changes.

- many pipelined publishes from several connections to one topic: fewer
  EVALSHA calls than publishes (INFO commandstats); the revisions are
  contiguous, each ack's rev is its own history entry, every subscriber
  gets every delivery once, in revision order, each publisher's in the
  order it sent them;
- a schema change in the middle of a burst: the publishes sent with the
  old tag are refused as a group and sent again in order, nothing lost,
  nothing twice, nothing reordered;
- publish and sendWithoutSave in one group: each delivered in its place,
  only the publishes get revisions;
- loom_redis_wait: one WAIT per group; a replica that stops makes every
  publish of the group unconfirmed;
- subscribed publishers in one burst: each still gets its own delivery
  before its ack;
- a get behind a publish, and Redis restarting in the middle of groups.
"""

import json
import os
import signal
import threading
import time

import pytest

from conftest import Redis, register, subscribe, wait_for
from relay import Relay
from wsclient import TEXT, encode_frame

V2 = "dataloom.v2"
SCHEMA = {"n": None}
KEY = "loom:{t:%s}"


def v2(n):
    c = n.client(headers={"Sec-WebSocket-Protocol": V2})
    assert c.response_headers.get("sec-websocket-protocol") == V2
    return c


def message(topic, rid, value, action="publish"):
    return {"id": rid, "action": action, "topic": topic,
            "data": {"n": value}, "requireAck": True}


def frame(topic, rid, value, action="publish"):
    return encode_frame(TEXT, json.dumps(message(topic, rid, value, action)))


def evalsha_calls(rc, command="evalsha"):
    return rc.info("commandstats").get("cmdstat_" + command,
                                       {}).get("calls", 0)


def answers(c, count, timeout=20):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        m = c.recv_json(timeout=max(0.1, deadline - time.monotonic()))
        if m.get("type") == "response":
            got.append(m)
    return got


def deliveries(c, count, timeout=20):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        m = c.recv_json(timeout=max(0.1, deadline - time.monotonic()))
        assert m.get("type") != "response", m
        got.append(m)
    return got


def history(c, topic, since):
    """Every entry after since, page by page."""
    got = []
    while True:
        r = c.request({"id": "h", "action": "history", "topic": topic,
                       "since": since, "limit": 1000})
        assert r["code"] == 200, r
        if not r["data"]:
            return got
        got += r["data"]
        since = r["data"][-1]["rev"]


def burst(pubs, topic, count, action=lambda k, i: "publish", base=0):
    """Each publisher sends count frames in one write, all at once."""
    blobs = [b"".join(frame(topic, "c%d-%d" % (k, i), value(k, i, base),
                            action(k, i))
                      for i in range(count))
             for k in range(len(pubs))]
    for c, blob in zip(pubs, blobs):
        c.sock.sendall(blob)


def value(k, i, base=0):
    return (k + 1) * 100000 + base + i


def check_subscriber(s, expect, first_rev):
    """expect: the values in revision order; deliveries carry rev."""
    got = deliveries(s, len(expect))
    assert [m["rev"] for m in got] == list(range(first_rev,
                                                 first_rev + len(expect)))
    assert [m["data"]["n"] for m in got] == expect
    s.expect_silence(0.2)


def test_burst_from_several_connections_is_grouped(make_nginx,
                                                   redis_server):
    n = make_nginx()
    rc = redis_server.client()
    admin = v2(n)
    register(admin, "g", SCHEMA)
    subs = [v2(n) for _ in range(2)]
    for s in subs:
        subscribe(s, "g")
    pubs = [v2(n) for _ in range(5)]
    # each publisher once, acked: the worker knows the schema from now on
    for k, c in enumerate(pubs):
        r = c.request(message("g", "w", -k))
        assert (r["code"], r["rev"]) == (200, k + 1)
    for s in subs:
        assert len(deliveries(s, 5)) == 5

    rc.config_resetstat()
    count = 200
    burst(pubs, "g", count)

    acks = {}
    for k, c in enumerate(pubs):
        got = answers(c, count)
        assert [a["id"] for a in got] == ["c%d-%d" % (k, i)
                                          for i in range(count)]
        assert all(a["code"] == 200 for a in got), got
        revs = [a["rev"] for a in got]
        # each publisher's in the order it sent them
        assert revs == sorted(revs)
        for i, a in enumerate(got):
            acks[a["rev"]] = value(k, i)

    total = count * len(pubs)
    assert sorted(acks) == list(range(6, 6 + total))

    calls = evalsha_calls(rc)
    print("%d publishes, %d EVALSHA" % (total, calls))
    assert 0 < calls < total / 2

    # each ack's rev is the history entry of its own data
    entries = history(admin, "g", 5)
    assert [e["rev"] for e in entries] == list(range(6, 6 + total))
    assert all(e["data"] == {"n": acks[e["rev"]]} for e in entries)
    # one clock reading per group: times never go down
    ts = [e["ts"] for e in entries]
    assert ts == sorted(ts)

    # every subscriber: every delivery once, in revision order
    for s in subs:
        check_subscriber(s, [acks[r] for r in sorted(acks)], 6)

    r = admin.request({"id": "g1", "action": "get", "topic": "g"})
    assert r["data"] == {"n": acks[5 + total]} and r["rev"] == 5 + total
    for c in pubs + subs + [admin]:
        c.close()


def thaw(relay):
    with relay.lock:
        for p in relay.pairs:
            p.frozen_down = False


def test_schema_change_in_the_middle_of_a_burst(redis_server, make_nginx):
    # node a reaches Redis through a relay: while what Redis says to it is
    # held back, node b changes the schema; a's next publishes go with
    # the old tag, are refused as groups, and are sent again in order
    relay = Relay(redis_server.port)
    try:
        a = make_nginx(redis_port=relay.port, name="a",
                       http="loom_redis_timeout 30s; "
                            "loom_redis_ping_interval 30s;")
        b = make_nginx(name="b")
        rc = redis_server.client()
        admin = v2(b)
        register(admin, "s", SCHEMA)
        subs = [v2(a), v2(b)]
        for s in subs:
            subscribe(s, "s")
        pubs = [v2(a) for _ in range(4)]
        for k, c in enumerate(pubs):
            r = c.request(message("s", "w", -k))
            assert r["code"] == 200, r
        for s in subs:
            assert len(deliveries(s, 4)) == 4
        tag = rc.hget(KEY % "s", "tag")

        count = 100
        relay.freeze(down=True)
        try:
            burst(pubs, "s", count)
            wait_for(lambda: int(rc.hget(KEY % "s", "rev"))
                     == 4 + 4 * count, what="the first halves stored")
            r = admin.request({"id": "u", "action": "updateSchema",
                               "topic": "s", "data": SCHEMA,
                               "requireAck": True})
            assert r["code"] == 200, r
            assert rc.hget(KEY % "s", "tag") != tag
            before = evalsha_calls(rc)
            burst(pubs, "s", count, base=count)
            # they reach Redis with the old tag: refused, nothing stored
            wait_for(lambda: evalsha_calls(rc) > before,
                     what="the second halves in Redis")
            time.sleep(0.3)
            assert int(rc.hget(KEY % "s", "rev")) == 4 + 4 * count
        finally:
            thaw(relay)

        acks = {}
        for k, c in enumerate(pubs):
            got = answers(c, 2 * count)
            assert [x["id"] for x in got] == ["c%d-%d" % (k, i)
                                              for i in range(count)] * 2
            assert all(x["code"] == 200 for x in got), \
                [x for x in got if x["code"] != 200][:3]
            revs = [x["rev"] for x in got]
            assert revs == sorted(revs)
            for i, x in enumerate(got):
                acks[x["rev"]] = value(k, i % count,
                                       count if i >= count else 0)
        total = 8 * count
        assert sorted(acks) == list(range(5, 5 + total))
        entries = history(admin, "s", 4)
        assert [e["data"]["n"] for e in entries] == \
            [acks[r] for r in range(5, 5 + total)]
        for s in subs:
            check_subscriber(s, [acks[r] for r in sorted(acks)], 5)
        for c in pubs + subs + [admin]:
            c.close()
    finally:
        relay.close()


def test_publish_and_send_without_save_in_one_group(make_nginx,
                                                    redis_server):
    n = make_nginx()
    rc = redis_server.client()
    admin = v2(n)
    register(admin, "m", SCHEMA)
    sub = v2(n)
    subscribe(sub, "m")
    pubs = [v2(n) for _ in range(3)]
    for c in pubs:
        assert c.request(message("m", "w", 0))[
            "code"] == 200
    assert len(deliveries(sub, 3)) == 3

    def action(k, i):
        return "sendWithoutSave" if i % 3 == 1 else "publish"

    rc.config_resetstat()
    count = 120
    burst(pubs, "m", count, action=action)
    stored = {}
    for k, c in enumerate(pubs):
        got = answers(c, count)
        assert [x["id"] for x in got] == ["c%d-%d" % (k, i)
                                          for i in range(count)]
        assert all(x["code"] == 200 for x in got)
        assert [x["action"] for x in got] == [action(k, i)
                                              for i in range(count)]
        # an ack of sendWithoutSave carries no rev
        assert all("rev" not in x for x in got
                   if x["action"] == "sendWithoutSave")
        for i, x in enumerate(got):
            if "rev" in x:
                stored[x["rev"]] = value(k, i)
    assert evalsha_calls(rc) < 3 * count / 2
    assert sorted(stored) == list(range(4, 4 + 3 * count * 2 // 3))

    # the subscriber: all of them, each once; the stored ones in rev order
    # with their own data, each publisher's in the order it sent them
    got = deliveries(sub, 3 * count)
    revs = [m["rev"] for m in got if "rev" in m]
    assert revs == sorted(stored)
    assert [m["data"]["n"] for m in got if "rev" in m] == \
        [stored[r] for r in revs]
    for k in range(3):
        mine = [m["data"]["n"] for m in got
                if m["data"]["n"] // 100000 == k + 1]
        assert mine == [value(k, i) for i in range(count)]
    # the value is the last stored one
    assert admin.request({"id": "g", "action": "get", "topic": "m"})[
        "rev"] == 3 + 3 * count * 2 // 3
    for c in pubs + [sub, admin]:
        c.close()


def test_get_behind_publishes_sees_them(make_nginx, redis_server):
    # a get (another command) sends the group before it
    n = make_nginx()
    c = v2(n)
    register(c, "o", SCHEMA)
    assert c.request(message("o", "w", 0))[
        "code"] == 200
    other = v2(n)
    for round in range(5):
        blob = b"".join(frame("o", "p%d" % i, round * 100 + i)
                        for i in range(30))
        c.sock.sendall(blob)
        r = other.request({"id": "x", "action": "sendWithoutSave",
                           "topic": "o", "data": {"n": -1},
                           "requireAck": True})
        assert r["code"] == 200
        got = answers(c, 30)
        assert all(x["code"] == 200 for x in got)
        c.send_json({"id": "g", "action": "get", "topic": "o"})
        r = answers(c, 1)[0]
        assert r["data"] == {"n": round * 100 + 29}
    c.close()
    other.close()


def replica_online(master):
    info = master.client().info("replication")
    return (info.get("connected_slaves") == 1
            and info["slave0"]["state"] == "online"
            and master.client().execute_command("WAIT", 1, 1000) == 1)


UNCONFIRMED = ("storage error: written on the master, not confirmed by 1 "
               "replicas within 1000 ms")


def test_group_under_redis_wait(workdir, make_nginx):
    master = Redis(os.path.join(workdir, "master")).start()
    replica = Redis(os.path.join(workdir, "replica"),
                    args=["--replicaof", "127.0.0.1",
                          str(master.port)]).start()
    try:
        wait_for(lambda: replica_online(master), what="the replica")
        n = make_nginx(redis_port=master.port,
                       http="loom_redis_wait 1 1s;")
        rc = master.client()
        admin = v2(n)
        register(admin, "d", SCHEMA)
        pubs = [v2(n) for _ in range(4)]
        for c in pubs:
            assert c.request(message("d", "w", 0))[
                "code"] == 200

        rc.config_resetstat()
        count = 100
        burst(pubs, "d", count)
        for k, c in enumerate(pubs):
            got = answers(c, count)
            assert all(x["code"] == 200 for x in got), got[:3]
        # one WAIT behind each group, none for a group of sends only
        calls, waits = evalsha_calls(rc), evalsha_calls(rc, "wait")
        assert 0 < calls < 2 * count and waits == calls
        # acked: the replica has the last of them
        last = max(int(x) for x in [rc.hget(KEY % "d", "rev")])
        assert replica.client().hget(KEY % "d", "rev") == str(last).encode()

        rc.config_resetstat()
        burst(pubs, "d", 20, action=lambda k, i: "sendWithoutSave")
        for c in pubs:
            assert all(x["code"] == 200 for x in answers(c, 20))
        assert evalsha_calls(rc) > 0 and evalsha_calls(rc, "wait") == 0

        # the replica stops: every publish of every group is unconfirmed,
        # the sends of a mixed group still answer 200
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            burst(pubs, "d", 10, base=1000,
                  action=lambda k, i: "sendWithoutSave" if i == 5
                  else "publish")
            for k, c in enumerate(pubs):
                got = answers(c, 10, timeout=30)
                for i, x in enumerate(got):
                    assert x["id"] == "c%d-%d" % (k, i)
                    assert (x["code"], x.get("message")) == (
                        500, UNCONFIRMED), x
            # what the error says: the master has them
            assert int(rc.hget(KEY % "d", "rev")) == last + 4 * 9
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        for c in pubs + [admin]:
            c.close()
    finally:
        replica.kill()
        master.kill()


def test_redis_restart_in_the_middle_of_groups(redis_server, make_nginx):
    # groups in flight when the link drops: each publish answered once,
    # ok or 500, in order; what was acked is stored
    n = make_nginx()
    c = v2(n)
    # history for all of them, however many go out before Redis stops
    r = c.request({"id": "reg", "action": "registerTopic", "topic": "r",
                   "data": SCHEMA, "retention": {"history": 100000},
                   "requireAck": True})
    assert r["code"] == 200, r
    assert c.request(message("r", "w", 0))[
        "code"] == 200
    stop = threading.Event()

    def kill():
        time.sleep(0.05)
        redis_server.restart()
        stop.set()

    t = threading.Thread(target=kill)
    t.start()
    sent = 0
    while not stop.is_set() and sent < 20000:
        c.sock.sendall(b"".join(frame("r", "p%d" % (sent + i), sent + i)
                                for i in range(50)))
        sent += 50
        time.sleep(0.005)
    t.join()
    got = answers(c, sent, timeout=60)
    assert [x["id"] for x in got] == ["p%d" % i for i in range(sent)]
    ok = [x for x in got if x["code"] == 200]
    assert ok and all(x["code"] in (200, 500) for x in got)
    revs = [x["rev"] for x in ok]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)
    wait_for(n.redis_up, what="the links back")
    h = history(c, "r", 0)
    assert len(h) < 100000
    stored = {e["rev"]: e["data"]["n"] for e in h}
    for x in ok:
        assert stored[x["rev"]] == int(x["id"][1:])
    c.close()


def test_subscribed_publishers_see_their_delivery_before_the_ack(
        make_nginx, redis_server):
    n = make_nginx()
    rc = redis_server.client()
    admin = v2(n)
    register(admin, "h", SCHEMA)
    pubs = [v2(n) for _ in range(3)]
    for c in pubs:
        subscribe(c, "h")
    for k, c in enumerate(pubs):
        c.send_json(message("h", "w", -k))
    for c in pubs:
        # three deliveries and its own ack, the ack after its delivery
        got = [c.recv_json() for _ in range(4)]
        ack = [m for m in got if m.get("type") == "response"][0]
        assert [m["rev"] for m in got if m.get("type") != "response"] == \
            [1, 2, 3]
        assert got.index(ack) > [m.get("rev") for m in got].index(
            ack["rev"])

    rc.config_resetstat()
    count = 100
    burst(pubs, "h", count)
    for k, c in enumerate(pubs):
        seen, acks = [], 0
        while acks < count or len(seen) < 3 * count:
            m = c.recv_json(timeout=20)
            if m.get("type") == "response":
                assert m["id"] == "c%d-%d" % (k, acks) and m["code"] == 200
                # its own delivery came first
                assert m["rev"] in seen, (m, seen[-3:])
                acks += 1
            else:
                seen.append(m["rev"])
        assert seen == list(range(4, 4 + 3 * count))
    assert evalsha_calls(rc) < 3 * count / 2
    for c in pubs + [admin]:
        c.close()
