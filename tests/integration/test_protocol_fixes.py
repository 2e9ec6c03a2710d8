"""The original server's bugs (seed-protocol section 13), fixed.

One test per bug or per deliberate difference: unique ClientIds and the
senderId in deliveries (B1, B5), no deadlock after unregistering a missing
topic (B2), a rejected publish answered once and neither delivered nor
stored (B3), sendWithoutSave not storing (B4), unsubscribeAll without a
topic (B8), no spurious "persist" errors (B9), subscriptions of broken
connections cleaned up (B12), concurrent registerTopic settled atomically
(B13), a slow subscriber not stalling publishers (B14), and the original's
own test flows (section 10) as the C# SDK and the Go tests send them.
"""

import json
import socket
import threading

import pytest

from conftest import answer, register, subscribe, wait_for
from wsclient import HandshakeError, encode_frame

MISMATCH = "schema doesn't match topics current schema"




def sync(c, rid="sync"):
    """Answers come in request order: nothing was left before this one."""
    r = c.request({"id": rid, "action": "listTopics"})
    assert (r["id"], r["action"]) == (rid, "listTopics"), r
    return r


def test_b1_b5_client_id_is_unique_and_names_the_sender(nginx):
    a = nginx.client(headers={"ClientId": "chat-integration-test"})
    with pytest.raises(HandshakeError) as e:
        nginx.client(headers={"ClientId": "chat-integration-test"})
    assert (e.value.status, e.value.body) == (409,
                                              b"client ID already exists\n")
    b = nginx.client()
    register(a, "t", {"m": None})
    subscribe(b, "t")
    a.send_json({"id": "1", "action": "publish", "topic": "t",
                 "data": {"m": "hi"}})
    assert b.recv_json() == {"id": "1", "action": "publish", "topic": "t",
                             "data": {"m": "hi"},
                             "senderId": "chat-integration-test"}
    a.close()
    b.close()


def test_b2_unregistering_a_missing_topic_does_not_hang(nginx):
    a = nginx.client()
    b = nginx.client()
    register(b, "keep", {"k": None})
    subscribe(b, "keep")
    r = a.request({"id": "d", "action": "unregisterTopic", "topic": "gone"})
    assert r == answer("d", "unregisterTopic", 500, "cannot unregister "
                       "topic. topic doesn't exist with name: gone")
    # every kind of topic operation still answers, on both connections
    for c in (a, b):
        assert c.request({"id": "r", "action": "registerTopic",
                          "topic": "x", "data": {"k": None},
                          "requireAck": True}) == \
            answer("r", "registerTopic", data={})
        assert c.request({"id": "u", "action": "updateSchema", "topic": "x",
                          "data": {"k": None}, "requireAck": True}) == \
            answer("u", "updateSchema")
        assert c.request({"id": "s", "action": "subscribe", "topic": "x",
                          "requireAck": True}) == answer("s", "subscribe")
        assert c.request({"id": "g", "action": "get", "topic": "keep"}) == \
            answer("g", "get", data=None)
        assert len(sync(c)["data"]) == 2
    r = a.request({"id": "p", "action": "publish", "topic": "keep",
                   "data": {"k": 1}, "requireAck": True})
    assert r == answer("p", "publish")
    assert b.recv_json()["id"] == "p"
    r = a.request({"id": "d", "action": "unregisterTopic", "topic": "x",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")
    # disconnect cleanup works too
    a.close()
    wait_for(lambda: nginx.status()["connections"] == 1, what="a to go")
    b.close()


def test_b3_rejected_publish_is_answered_once_not_delivered_not_stored(
        nginx):
    a = nginx.client()
    b = nginx.client()
    register(a, "chat", {"Sender": None, "Message": None})
    subscribe(a, "chat")
    subscribe(b, "chat")
    a.send_json({"id": "ok", "action": "publish", "topic": "chat",
                 "data": {"Sender": "a", "Message": "first"}})
    assert a.recv_json()["id"] == "ok"
    assert b.recv_json()["id"] == "ok"
    for ack in (True, False):
        a.send_json({"id": "bad", "action": "publish", "topic": "chat",
                     "data": {"Sender": "a", "Msg": "x"},
                     "requireAck": ack})
        assert a.recv_json() == answer("bad", "publish", 400, MISMATCH)
        # no delivery, no 200, nothing after: the next frame answers this
        sync(a)
    # a topic that does not exist: one 400, no 500, no persist frame
    a.send_json({"id": "m", "action": "publish", "topic": "nope",
                 "data": {"x": 1}, "requireAck": True})
    assert a.recv_json() == answer("m", "publish", 400,
                                   "could not get topic by name: nope")
    sync(a)
    # b never saw the rejected one: its next delivery is this
    a.send_json({"id": "next", "action": "publish", "topic": "chat",
                 "data": {"Sender": "a", "Message": "second"}})
    assert a.recv_json()["id"] == "next"
    assert b.recv_json()["id"] == "next"
    # and the stored value went from first to second only
    c = nginx.client()
    r = c.request({"id": "g", "action": "get", "topic": "chat"})
    assert r["data"] == {"Sender": "a", "Message": "second"}
    for x in (a, b, c):
        x.close()


def test_b4_send_without_save_does_not_store(nginx):
    a = nginx.client()
    register(a, "t", {"v": None})
    a.send_json({"id": "p", "action": "publish", "topic": "t",
                 "data": {"v": "saved"}})
    a.send_json({"id": "s", "action": "sendWithoutSave", "topic": "t",
                 "data": {"v": "not saved"}, "requireAck": True})
    assert a.recv_json() == answer("s", "sendWithoutSave")
    r = a.request({"id": "g", "action": "get", "topic": "t"})
    assert r == answer("g", "get", data={"v": "saved"})
    a.close()


def test_b8_unsubscribe_all_needs_no_topic(nginx):
    c = nginx.client()
    register(c, "t", {})
    subscribe(c, "t")
    # as the C# SDK sends it
    c.send_text('{"id":"ua","senderId":null,"action":"unsubscribeAll",'
                '"topic":null,"data":null,"requireAck":true}')
    assert c.recv_json() == answer("ua", "unsubscribeAll")
    assert nginx.status()["subscriptions"] == 0
    c.close()


def test_b9_no_persist_frames(nginx):
    a = nginx.client()
    register(a, "t", {"n": None})
    subscribe(a, "t")
    n = 100
    for i in range(n):
        a.send_json({"id": str(i), "action": "publish", "topic": "t",
                     "data": {"n": i}, "requireAck": i % 2 == 0})
    frames = [a.recv_json() for _ in range(n + n // 2)]
    assert all(f["action"] == "publish" for f in frames), frames
    assert sum(1 for f in frames if "type" in f) == n // 2
    assert all(f["code"] == 200 for f in frames if "type" in f)
    sync(a)
    a.close()


def test_b12_broken_connections_lose_their_subscriptions(nginx):
    keep = nginx.client()
    register(keep, "t", {})
    subscribe(keep, "t")
    # a protocol error: an unmasked frame
    bad = nginx.client()
    subscribe(bad, "t")
    bad.send_frame(1, '{"action":"listTopics"}', mask=False)
    f = bad.expect_close(1002)
    assert f.close_reason() == "unmasked client frame"
    bad.abort()
    # a reset
    rst = nginx.client()
    subscribe(rst, "t")
    rst.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rst.abort()
    # a plain EOF
    eof = nginx.client()
    subscribe(eof, "t")
    eof.sock.shutdown(socket.SHUT_WR)
    eof.expect_eof()
    eof.abort()
    wait_for(lambda: nginx.status()["subscriptions"] == 1,
             what="the dead subscribers to go")
    st = nginx.status()
    assert (st["connections"], st["topics"]) == (1, {"t": 1})
    assert st["protocol_errors"] == 1
    # the survivor still gets everything
    keep.send_json({"id": "p", "action": "publish", "topic": "t",
                    "data": {}})
    assert keep.recv_json()["id"] == "p"
    keep.close()


def test_b13_concurrent_register_is_atomic(nginx):
    clients = [nginx.client() for _ in range(6)]
    frames = [encode_frame(1, json.dumps({
        "id": str(i), "action": "registerTopic", "topic": "race",
        "data": {"k%d" % i: None}, "requireAck": True}))
        for i in range(len(clients))]
    start = threading.Barrier(len(clients))

    def go(c, f):
        start.wait()
        c.send_raw(f)

    threads = [threading.Thread(target=go, args=(c, f))
               for c, f in zip(clients, frames)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [c.recv_json() for c in clients]
    winners = [r for r in results if r["code"] == 200]
    assert len(winners) == 1, results
    for r in results:
        if r["code"] != 200:
            assert r == answer(r["id"], "registerTopic", 500,
                               "cannot register topic, topic already "
                               "exists with different schema. Try updating "
                               "schema")
    w = winners[0]["id"]
    assert winners[0] == answer(w, "registerTopic", data={})
    assert sync(clients[0])["data"] == [
        {"name": "race", "schema": {"version": 0,
                                    "schema": {"k" + w: None}}}]
    for c in clients:
        c.close()


def test_b14_slow_subscriber_does_not_stall_publishers(make_nginx):
    n = make_nginx(location="loom_max_send_queue 64k;")
    pub = n.client()
    fast = n.client()
    slow = n.client()
    register(pub, "t", {"blob": None, "i": None})
    subscribe(fast, "t")
    subscribe(slow, "t")
    blob = "x" * 16000
    sent = 0
    while n.status()["slow_consumers"] == 0:
        assert sent < 5000, "the slow subscriber was never cut off"
        for _ in range(20):
            # every publish is acknowledged at once, slow reader or not
            r = pub.request({"id": str(sent), "action": "publish",
                             "topic": "t", "data": {"blob": blob, "i": sent},
                             "requireAck": True}, timeout=5)
            assert r == answer(str(sent), "publish")
            d = fast.recv_json(timeout=5)
            assert d["data"]["i"] == sent
            sent += 1
    f = slow.expect_close(4008)
    assert f.close_reason() == "slow consumer"
    slow.abort()
    wait_for(lambda: n.status()["subscriptions"] == 1,
             what="the slow subscriber to go")
    # the others go on
    r = pub.request({"id": "last", "action": "publish", "topic": "t",
                     "data": {"blob": "", "i": -1}, "requireAck": True})
    assert r == answer("last", "publish")
    assert fast.recv_json()["id"] == "last"
    pub.close()
    fast.close()


def test_trailing_data_and_empty_frames_are_answered(nginx):
    c = nginx.client()
    c.send_text('{"id":"1","action":"listTopics"} trailing')
    assert c.recv_json() == answer(
        "UNKNOWN", "UNKNOWN", 400,
        "invalid character 't' after top-level value")
    c.send_text("")
    assert c.recv_json() == answer("UNKNOWN", "UNKNOWN", 400,
                                   "unexpected end of JSON input")
    c.send_text('{"id":"2"')
    assert c.recv_json() == answer("UNKNOWN", "UNKNOWN", 400,
                                   "unexpected end of JSON input")
    sync(c)
    c.close()


def test_go_integration_test_flow(nginx):
    """server/tests/server_test.go, TestWebSocketServer and -Integration."""
    c1 = nginx.client(headers={"Authorization": "data-loom-api-key"})
    c2 = nginx.client(headers={"Authorization": "data-loom-api-key"})
    c1.send_text('{"id":"testClient1","action":"subscribe",'
                 '"topic":"testTopic","requireAck":true}')
    assert c1.recv_json() == answer("testClient1", "subscribe", 500,
                                    "topic doesn't exist for testTopic")
    c1.send_text('{"id":"1","action":"registerTopic","topic":"test-topic",'
                 '"data":{"testKey": "testData"},"requireAck":true}')
    assert c1.recv_json() == answer("1", "registerTopic", data={})
    c2.send_text('{"id":"2","action":"subscribe","topic":"test-topic",'
                 '"requireAck":true}')
    assert c2.recv_json() == answer("2", "subscribe")
    c1.send_text('{"id":"3","action":"publish","topic":"test-topic",'
                 '"data":{"testKey": "testData"},"requireAck":true}')
    assert c1.recv_json() == answer("3", "publish")
    d = c2.recv_json()
    assert (d["topic"], d["data"]) == ("test-topic", {"testKey": "testData"})
    c2.send_text('{"id":"4","action":"get","topic":"test-topic",'
                 '"requireAck":true}')
    assert c2.recv_json() == answer("4", "get", data={"testKey": "testData"})
    c1.close()
    c2.close()


def sdk(rid, action, topic=None, data=None, ack=True):
    """A request as the C# SDK serialises it: every member, nulls too."""
    return json.dumps({"id": rid, "senderId": None, "action": action,
                       "topic": topic, "data": data, "requireAck": ack},
                      separators=(",", ":"))


def test_csharp_sdk_flows(nginx):
    """tests/csharp/IntegrationTests, rules (a) to (f) of section 10.4."""
    chat = {"Sender": None, "Message": None, "Timestamp": None}
    c = nginx.client(headers={"ClientId": "subscriber-client"})
    c.send_text(sdk("r", "registerTopic", "chat-room", chat))
    assert c.recv_json() == answer("r", "registerTopic", data={})
    c.send_text(sdk("r2", "registerTopic", "chat-room", chat))
    assert c.recv_json() == answer("r2", "registerTopic", data={})
    c.send_text(sdk("s", "subscribe", "chat-room"))
    assert c.recv_json() == answer("s", "subscribe")
    msg = {"Sender": "tester", "Message": "ping",
           "Timestamp": "2025-10-02T22:28:13.4893269Z"}
    c.send_text(sdk("p", "publish", "chat-room", msg))
    assert c.recv_json() == {"id": "p", "action": "publish",
                             "topic": "chat-room", "data": msg,
                             "senderId": "subscriber-client"}
    assert c.recv_json() == answer("p", "publish")
    c.send_text(sdk("g", "get", "chat-room"))
    assert c.recv_json() == answer("g", "get", data=msg)
    c.send_text(sdk("u", "unsubscribe", "chat-room"))
    assert c.recv_json() == answer("u", "unsubscribe")
    c.send_text(sdk("us", "updateSchema", "chat-room",
                    dict(chat, IsNew=None)))
    assert c.recv_json() == answer("us", "updateSchema")
    c.send_text(sdk("l", "listTopics"))
    r = c.recv_json()
    assert [t["name"] for t in r["data"]] == ["chat-room"]
    c.send_text(sdk("ua", "unsubscribeAll"))
    assert c.recv_json() == answer("ua", "unsubscribeAll")
    c.send_text(sdk("sw", "sendWithoutSave", "chat-room",
                    dict(msg, IsNew=True), ack=False))
    c.send_text(sdk("d", "unregisterTopic", "chat-room"))
    assert c.recv_json() == answer("d", "unregisterTopic")
    c.close()


def test_reregistered_topic_keeps_its_new_subscribers(nginx):
    """An unregister notice ends only the subscriptions to the registration
    it is about: a client that unregisters, registers again and subscribes
    without waiting keeps its new subscription."""
    old = nginx.client()
    register(old, "again", {"v": None})
    subscribe(old, "again")          # keeps the channel live on the worker

    c = nginx.client()
    for req in [
            {"id": "u", "action": "unregisterTopic", "topic": "again",
             "requireAck": True},
            {"id": "r", "action": "registerTopic", "topic": "again",
             "data": {"w": None}, "requireAck": True},
            {"id": "s", "action": "subscribe", "topic": "again",
             "requireAck": True},
            {"id": "p", "action": "publish", "topic": "again",
             "data": {"w": 1}, "requireAck": True}]:
        c.send_json(req)
    answers = {}
    while len(answers) < 4:
        m = c.recv_json()
        if m.get("type") == "response":
            answers[m["id"]] = m["code"]
        else:
            assert m["data"] == {"w": 1}
            delivered = True
    assert answers == {"u": 200, "r": 200, "s": 200, "p": 200}
    assert delivered

    # the old subscriber was dropped with its registration
    c.send_json({"id": "p2", "action": "publish", "topic": "again",
                 "data": {"w": 2}})
    assert c.recv_json()["data"] == {"w": 2}
    old.send_json({"id": "l", "action": "listTopics"})
    assert old.recv_json()["id"] == "l"
    assert nginx.status()["topics"] == {"again": 1}
    old.close()
    c.close()
