"""State lives in Redis: it survives nginx and Redis restarts.

Topics, schema versions (the current one is still enforced) and latest
values survive an nginx stop and start, a Redis restart (AOF with
appendfsync always, as the redis_server fixture runs it) and a Redis
SIGKILL right after the acknowledgements; a new nginx node on the same
Redis sees the same state; nginx's graceful shutdown closes sessions with
1001.
"""

import os
import signal

from conftest import answer, register, subscribe, wait_for
from wsclient import CLOSE




def build_state(c):
    """Three topics, schema versions 0, 2 and 0, values stored or not."""
    register(c, "plain", {"a": None})
    register(c, "evolved", {"v0": None})
    register(c, "empty", {"e": None})
    register(c, "doomed", {"d": None})
    for i, schema in enumerate(({"v1": None}, {"v2": None, "n": {"x": 0}})):
        r = c.request({"id": "u%d" % i, "action": "updateSchema",
                       "topic": "evolved", "data": schema,
                       "requireAck": True})
        assert r == answer("u%d" % i, "updateSchema")
    c.send_text('{"id":"p","action":"publish","topic":"plain",'
                '"data":{"a" : [1, 2.0, "\\u00e9"]},"requireAck":true}')
    assert c.recv_json() == answer("p", "publish")
    c.send_json({"id": "p", "action": "publish", "topic": "evolved",
                 "data": {"v2": 1, "n": {"x": 2}}, "requireAck": True})
    assert c.recv_json() == answer("p", "publish")
    c.send_json({"id": "s", "action": "sendWithoutSave", "topic": "plain",
                 "data": {"a": "transient"}, "requireAck": True})
    assert c.recv_json() == answer("s", "sendWithoutSave")
    r = c.request({"id": "d", "action": "unregisterTopic", "topic": "doomed",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")


EXPECTED_TOPICS = [
    {"name": "empty", "schema": {"version": 0, "schema": {"e": None}}},
    {"name": "evolved", "schema": {"version": 2,
                                   "schema": {"v2": None, "n": {"x": 0}}}},
    {"name": "plain", "schema": {"version": 0, "schema": {"a": None}}},
]


def check_state(c):
    r = c.request({"id": "l", "action": "listTopics"})
    assert r == answer("l", "listTopics", data=EXPECTED_TOPICS)
    # the value bytes are kept as they were sent
    c.send_text('{"id":"g","action":"get","topic":"plain"}')
    f = c.recv_message()
    assert f.payload == (b'{"id":"g","action":"get","code":200,'
                         b'"data":{"a" : [1, 2.0, "\\u00e9"]},'
                         b'"type":"response"}\n')
    r = c.request({"id": "g", "action": "get", "topic": "evolved"})
    assert r == answer("g", "get", data={"v2": 1, "n": {"x": 2}})
    r = c.request({"id": "g", "action": "get", "topic": "empty"})
    assert r == answer("g", "get", data=None)
    r = c.request({"id": "g", "action": "get", "topic": "doomed"})
    assert r == answer("g", "get", 500, "couldn't get value for topic. "
                       "topic doesn't exist. topic: doomed")
    # the current schema version is the one enforced
    mismatch = "schema doesn't match topics current schema"
    for data in ({"v0": 1}, {"v1": 1}, {"v2": 1, "n": {"y": 1}}):
        r = c.request({"id": "p", "action": "publish", "topic": "evolved",
                       "data": data, "requireAck": True})
        assert r == answer("p", "publish", 400, mismatch), data
    # registering the current key set again is fine, another one is not
    r = c.request({"id": "r", "action": "registerTopic", "topic": "evolved",
                   "data": {"n": {"x": 1}, "v2": 0}, "requireAck": True})
    assert r == answer("r", "registerTopic", data={})
    r = c.request({"id": "r", "action": "registerTopic", "topic": "plain",
                   "data": {"b": None}, "requireAck": True})
    assert r == answer("r", "registerTopic", 500, "cannot register topic, "
                       "topic already exists with different schema. Try "
                       "updating schema")
    # and the topics work: subscribe, publish, deliver, store
    subscribe(c, "evolved")
    r = c.request({"id": "p2", "action": "publish", "topic": "evolved",
                   "data": {"v2": 2, "n": {"x": 3}}})
    assert r["id"] == "p2" and r["data"] == {"v2": 2, "n": {"x": 3}}, r
    r = c.request({"id": "g", "action": "get", "topic": "evolved"})
    assert r == answer("g", "get", data={"v2": 2, "n": {"x": 3}})
    r = c.request({"id": "u", "action": "updateSchema", "topic": "evolved",
                   "data": {"v3": None}, "requireAck": True})
    assert r == answer("u", "updateSchema")
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["data"][1] == {"name": "evolved", "schema": {
        "version": 3, "schema": {"v3": None}}}


def test_state_survives_nginx_restart(make_nginx):
    n = make_nginx()
    c = n.client()
    build_state(c)
    subscribed = n.client()
    subscribe(subscribed, "plain")
    os.kill(n.master, signal.SIGQUIT)
    # a graceful stop says goodbye to every session
    for x in (c, subscribed):
        f = x.expect_close(1001)
        assert f.close_reason() == "server shutting down"
        x.send_frame(CLOSE, f.payload[:2])
        x.expect_eof()
        x.abort()
    n.stop()
    n.start()
    c = n.client()
    check_state(c)
    c.close()


def test_state_is_shared_with_a_new_node(make_nginx):
    a = make_nginx()
    c = a.client()
    build_state(c)
    c.close()
    b = make_nginx()
    c = b.client()
    check_state(c)
    c.close()


def test_state_survives_redis_restart(redis_server, nginx):
    c = nginx.client()
    build_state(c)
    redis_server.restart()
    # the module reconnects by itself, the session stays
    wait_for(nginx.redis_up, what="redis links up again")
    check_state(c)
    c.close()


def test_acknowledged_publishes_survive_redis_kill(redis_server, nginx):
    c = nginx.client()
    build_state(c)
    for i in range(50):
        c.send_json({"id": str(i), "action": "publish", "topic": "evolved",
                     "data": {"v2": i, "n": {"x": -i}}, "requireAck": True})
    for i in range(50):
        assert c.recv_json() == answer(str(i), "publish")
    redis_server.kill()
    redis_server.start()
    wait_for(nginx.redis_up, what="redis links up again")
    r = c.request({"id": "g", "action": "get", "topic": "evolved"})
    assert r == answer("g", "get", data={"v2": 49, "n": {"x": -49}})
    r = c.request({"id": "l", "action": "listTopics"})
    assert r == answer("l", "listTopics", data=EXPECTED_TOPICS)
    c.close()


def test_schema_updates_do_not_grow_the_topic(redis_server, make_nginx):
    # with one version kept, only the current schema is: a topic's hash has
    # the same fields after 50 updates as after one (an older release added
    # one per update)
    nginx = make_nginx(http="loom_schema_versions 1;")
    c = nginx.client()
    register(c, "growing", {"v": None})
    rc = redis_server.client()
    sizes = []
    for i in range(50):
        r = c.request({"id": "u%d" % i, "action": "updateSchema",
                       "topic": "growing", "data": {"v%d" % i: None},
                       "requireAck": True})
        assert r == answer("u%d" % i, "updateSchema")
        sizes.append(rc.hlen("loom:{t:growing}"))
    assert sizes[-1] == sizes[0]
    assert rc.hget("loom:{t:growing}", "schema") == b'{"v49": null}'
    # fields an older release left are removed as versions pass
    rc.hset("loom:{t:growing}", "s:50", b'{"old": null}')
    r = c.request({"id": "u", "action": "updateSchema", "topic": "growing",
                   "data": {"w": None}, "requireAck": True})
    assert r == answer("u", "updateSchema")
    assert not rc.hexists("loom:{t:growing}", "s:50")
    c.close()


def test_schema_versions_kept_are_bounded(redis_server, nginx):
    # by default the last 10 versions are kept: the hash grows by one field
    # per update until then, and no more
    c = nginx.client()
    register(c, "growing", {"v": None})
    rc = redis_server.client()
    sizes = []
    for i in range(30):
        r = c.request({"id": "u%d" % i, "action": "updateSchema",
                       "topic": "growing", "data": {"v%d" % i: None},
                       "requireAck": True})
        assert r == answer("u%d" % i, "updateSchema")
        sizes.append(rc.hlen("loom:{t:growing}"))
    assert sizes[8] == sizes[0] + 8
    assert sizes[-1] == sizes[8]
    fields = {f.decode() for f in rc.hkeys("loom:{t:growing}")}
    assert {f for f in fields if f.startswith("s:")} == {
        "s:%d" % v for v in range(21, 30)}
    assert rc.hget("loom:{t:growing}", "s:29") == b'{"v28": null}'
    c.close()
