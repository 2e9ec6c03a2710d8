"""Redis links that stay open but stop answering.

nginx talks to Redis through a relay that can freeze one direction of the
connections open at that moment (tests/integration/relay.py): the TCP
connection stays up, nothing comes through.  Each link must notice within
loom_redis_ping_interval + loom_redis_timeout, say so in the error log and
on the status page, fail what waits on it, and come back on a new
connection by itself; nothing may wait forever.  A link the server closes
must be seen closed at once, not at its next PING.
"""

import socket

import pytest

from conftest import register, subscribe, wait_for
from relay import Relay

LOST = "storage unavailable: connection to redis lost"
LIVENESS = "loom_redis_timeout 500ms; loom_redis_ping_interval 300ms;"


@pytest.fixture
def relayed(redis_server, make_nginx):
    relays = []

    def make(http=LIVENESS, **kw):
        relay = Relay(redis_server.port)
        relays.append(relay)
        n = make_nginx(redis_port=relay.port, http=http, **kw)
        return relay, n

    yield make
    for r in relays:
        r.close()


def reconnects(n):
    return n.status()["redis"]["reconnects"]


def link_timed_out(n, link):
    return any("no reply for" in line and "(%s link)" % link in line
               for line in n.log().splitlines())


def test_frozen_subscriber_link_is_rebuilt(relayed):
    relay, n = relayed()
    sub = n.client()
    pub = n.client()
    register(pub, "frozen", {"v": None})
    subscribe(sub, "frozen")
    wait_for(lambda: relay.connections(subscriber=True), what="the link")

    before = reconnects(n)
    relay.freeze(down=True, subscriber_only=True)

    wait_for(lambda: link_timed_out(n, "subscriber"), timeout=10,
             what="the subscriber link to be declared down")
    wait_for(lambda: reconnects(n) > before, what="a reconnect")
    wait_for(n.redis_up, what="the links to come back")

    # the subscription is on the new connection: deliveries flow again
    wait_for(lambda: [p for p in relay.connections(subscriber=True)
                      if not p.frozen_down],
             what="a new subscriber connection")
    pub.send_json({"id": "p", "action": "publish", "topic": "frozen",
                   "data": {"v": 1}, "requireAck": True})
    assert pub.recv_json()["code"] == 200
    d = sub.recv_json(timeout=5)
    assert (d["topic"], d["data"]) == ("frozen", {"v": 1})
    assert not link_timed_out(n, "command")
    sub.close()
    pub.close()


def test_held_ack_is_released_when_the_subscriber_link_freezes(relayed):
    relay, n = relayed()
    c = n.client()
    register(c, "held", {"v": None})
    subscribe(c, "held")
    wait_for(lambda: relay.connections(subscriber=True), what="the link")
    relay.freeze(down=True, subscriber_only=True)

    # stored at once on the command link; the ack waits for the delivery,
    # which cannot come: it goes out when the link is declared down
    c.send_json({"id": "p", "action": "publish", "topic": "held",
                 "data": {"v": 1}, "requireAck": True})
    r = c.recv_json(timeout=5)
    assert (r["id"], r["code"]) == ("p", 200)
    assert link_timed_out(n, "subscriber")
    c.close()


def closed_by_server(n, link):
    return any("connection closed by the server" in line
               and "(%s link)" % link in line
               for line in n.log().splitlines())


# a message on a channel nobody subscribed to: the worker drops it
STRAY = b"*3\r\n$7\r\nmessage\r\n$5\r\nstray\r\n$1\r\nx\r\n"


def test_subscriber_link_closed_behind_a_message_is_noticed(relayed):
    # Redis closing the link right behind a message (CLIENT KILL while
    # deliveries flow, or a worker slow to wake): the bytes and the end
    # are seen with one readiness event.  A link that stopped reading at
    # the message looked up until its next PING, 60 s here, and what was
    # published meanwhile never came.
    relay, n = relayed(http="loom_redis_ping_interval 60s;")
    sub = n.client()
    pub = n.client()
    register(pub, "hangup", {"v": None})
    subscribe(sub, "hangup")
    wait_for(lambda: relay.connections(subscriber=True), what="the link")

    before = reconnects(n)
    relay.hang_up(STRAY)

    wait_for(lambda: closed_by_server(n, "subscriber"), timeout=10,
             what="the subscriber link to be seen closed")
    wait_for(lambda: reconnects(n) > before, what="a reconnect")
    wait_for(n.redis_up, what="the links to come back")
    wait_for(lambda: relay.connections(subscriber=True),
             what="a new subscriber connection")
    pub.send_json({"id": "p", "action": "publish", "topic": "hangup",
                   "data": {"v": 1}, "requireAck": True})
    assert pub.recv_json()["code"] == 200
    d = sub.recv_json(timeout=5)
    assert (d["topic"], d["data"]) == ("hangup", {"v": 1})
    sub.close()
    pub.close()


def test_subscribe_waiting_for_a_frozen_link_fails(relayed):
    relay, n = relayed()
    c = n.client()
    register(c, "first", {"v": None})
    register(c, "second", {"v": None})
    subscribe(c, "first")
    wait_for(lambda: relay.connections(subscriber=True), what="the link")
    relay.freeze(down=True, subscriber_only=True)

    r = c.request({"id": "s", "action": "subscribe", "topic": "second",
                   "requireAck": True}, timeout=5)
    assert (r["code"], r["message"]) == (500, LOST)
    # a later subscribe works on the rebuilt link
    wait_for(n.redis_up, what="the links to come back")
    subscribe(c, "second")
    c.close()


def test_frozen_idle_links_are_found_by_ping(relayed):
    relay, n = relayed()
    wait_for(lambda: len(relay.connections()) == 2, what="both links")
    before = reconnects(n)
    relay.freeze(down=True)

    # nobody sends anything: only the links' own PING can tell
    wait_for(lambda: link_timed_out(n, "command")
             and link_timed_out(n, "subscriber"), timeout=10,
             what="both idle links to be declared down")
    wait_for(lambda: reconnects(n) >= before + 2, what="reconnects")
    wait_for(n.redis_up, what="the links to come back")
    c = n.client()
    register(c, "after", {"v": None})
    c.close()


def test_frozen_command_link_fails_the_request_in_flight(relayed):
    relay, n = relayed()
    c = n.client()
    register(c, "cmd", {"v": None})
    relay.freeze(down=True)
    r = c.request({"id": "p", "action": "publish", "topic": "cmd",
                   "data": {"v": 1}, "requireAck": True}, timeout=5)
    assert (r["code"], r["message"]) == (500, LOST)
    c.close()


def test_bytes_queued_for_redis_are_bounded(relayed):
    # Redis takes nothing (its side of the relay stops reading): past
    # loom_redis_max_buffered of unsent commands, requests get an error at
    # once instead of growing the worker's memory
    relay, n = relayed(http="loom_redis_timeout 60s; "
                            "loom_redis_max_buffered 1m;")
    filler = n.client()
    register(filler, "big", {"pad": None})
    # one publish through, so that the worker knows the schema and sends
    # the next ones at once instead of holding them behind the first
    r = filler.request({"id": "warm", "action": "publish", "topic": "big",
                        "data": {"pad": ""}, "requireAck": True})
    assert r["code"] == 200
    relay.freeze(down=False, up=True)

    # 20 MB of commands, far more than the kernel's socket buffers take
    pad = "x" * 500000
    for i in range(40):
        filler.send_json({"id": str(i), "action": "publish", "topic": "big",
                          "data": {"pad": pad}, "requireAck": True})

    probes = []

    def refused():
        # a fresh connection's request is answered first on it: either
        # queued (no answer: Redis takes nothing) or refused at once
        p = n.client()
        probes.append(p)
        p.send_json({"id": "probe", "action": "publish", "topic": "big",
                     "data": {"pad": pad}, "requireAck": True})
        try:
            r = p.recv_json(timeout=0.5)
        except socket.timeout:
            return False
        assert (r["code"], r["message"]) == (
            500, "storage unavailable: too much data queued for redis")
        return True

    wait_for(refused, timeout=20, what="a request refused for the bound")
    for p in probes:
        p.abort()
    filler.abort()
