"""The per-connection request queue under faults and stale caches.

- Deep deferral: thousands of requests kept behind a barrier all fail when
  the Redis link drops, one after the other, without the worker's stack
  growing with their number.
- A publish whose cached schema tag turned out stale is retried; the
  requests sent right behind it still see it take effect first.
- A subscribed publisher sees its own delivery before the ack even when
  the topic was registered anew since this worker last counted its
  deliveries.
"""

import os
import signal
import time

from conftest import answer, register, subscribe, wait_for
from wsclient import TEXT, encode_frame

LOST = "storage unavailable: connection to redis lost"


def frames(objs):
    import json
    return b"".join(encode_frame(TEXT, json.dumps(o)) for o in objs)


def test_deep_deferral_fails_in_a_loop_when_redis_drops(redis_server,
                                                        make_nginx):
    n = make_nginx(location="loom_max_inflight 200000;\n"
                            "loom_max_message_size 16m;\n"
                            "loom_max_send_queue 64m;")
    c = n.client()
    register(c, "t", {"n": None})

    # the worker has no schema of t cached: the publish is a barrier and
    # every get behind it is kept as received
    count = 40000
    burst = [{"id": "p", "action": "publish", "topic": "t",
              "data": {"n": 1}, "requireAck": True}]
    burst += [{"id": "g%d" % i, "action": "get", "topic": "t"}
              for i in range(count)]

    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        c.send_raw(frames(burst))
        # nothing to wait on from outside: give the worker time to read it
        time.sleep(2)
    finally:
        os.kill(redis_server.proc.pid, signal.SIGKILL)
        os.kill(redis_server.proc.pid, signal.SIGCONT)
        redis_server.proc.wait()

    r = c.recv_json(timeout=30)
    assert r == answer("p", "publish", 500, LOST)
    for i in range(count):
        r = c.recv_json(timeout=30)
        assert (r["id"], r["action"], r["code"]) == ("g%d" % i, "get", 500), r
        assert r["message"].startswith(
            "couldn't get value for topic with error: "), r
    c.expect_silence()
    assert n.worker_pids() and "signal" not in n.log()


def test_get_behind_a_publish_with_a_stale_cached_tag(redis_server, nginx):
    a = nginx.client()
    register(a, "t", {"n": None})

    # the worker caches the schema and its tag
    r = a.request({"id": "p0", "action": "publish", "topic": "t",
                   "data": {"n": 0}, "requireAck": True})
    assert r == answer("p0", "publish")

    # a schema change the worker has not heard of yet (its notice on the
    # control channel is still on the way): only the tag moves
    rc = redis_server.client()
    tag = rc.hget("loom:{t:t}", "tag").decode()
    reg = tag.split(":")[0]
    rc.hset("loom:{t:t}", mapping={"tag": reg + ":1", "sv": 1})

    a.send_raw(frames([
        {"id": "p1", "action": "publish", "topic": "t", "data": {"n": 1},
         "requireAck": True},
        {"id": "g1", "action": "get", "topic": "t"}]))
    assert a.recv_json() == answer("p1", "publish")
    assert a.recv_json() == answer("g1", "get", data={"n": 1})


def flood(rc, topic, size):
    """A message that keeps the subscriber link busy for a while."""
    rc.publish("loom:{t:%s}:msg" % topic, "x" * size)


def test_own_delivery_before_ack_after_redis_lost_its_data(redis_server,
                                                           nginx):
    p = nginx.client()
    noise = nginx.client()
    register(p, "t", {"n": None})
    register(p, "noise", {"n": None})
    subscribe(p, "t")
    subscribe(noise, "noise")

    # this worker counts deliveries of t up to 5
    for i in range(5):
        p.send_json({"id": "p%d" % i, "action": "publish", "topic": "t",
                     "data": {"n": i}, "requireAck": True})
        assert p.recv_json()["data"] == {"n": i}
        assert p.recv_json() == answer("p%d" % i, "publish")

    # Redis loses everything; the topics are registered again
    rc = redis_server.client()
    rc.flushall()
    b = nginx.client()
    register(b, "t", {"n": None})
    register(b, "noise", {"n": None})

    # a long message ahead on the subscriber link: the publish's answer
    # comes back on the command link well before its delivery
    flood(rc, "noise", 4 * 1024 * 1024)
    p.send_json({"id": "q", "action": "publish", "topic": "t",
                 "data": {"n": 9}, "requireAck": True})
    first = p.recv_json(timeout=20)
    second = p.recv_json(timeout=20)
    assert first.get("data") == {"n": 9} and "type" not in first, \
        (first, second)
    assert second == answer("q", "publish")
