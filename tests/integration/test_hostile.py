"""Hostile or broken clients: each costs the server a bounded amount and
gets a clear answer, and nobody else notices."""

import json
import os
import re
import socket
import struct
import threading

from conftest import Nginx, register, subscribe, wait_for
from wsclient import PING, PONG, TEXT, WSClient, encode_frame

LIST = '{"id":"l","action":"listTopics"}'


def worker_rss_kb(n):
    total = 0
    for pid in n.worker_pids():
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def test_slow_handshake_is_cut_off(make_nginx):
    n = make_nginx(server="client_header_timeout 300ms;")
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: web")
    # nginx closes the connection when the header does not complete
    assert s.recv(100) == b""
    s.close()
    c = n.client()
    assert c.request({"id": "1", "action": "listTopics"})["code"] == 200
    c.close()


def test_flood_of_tiny_frames_is_flow_controlled(make_nginx):
    """100,000 requests sent without reading: the server stops reading the
    client when its answers pile up, and loses none."""
    n = make_nginx(location="loom_max_send_queue 256k;")
    c = n.client()
    count = 100000
    frames = b"".join(encode_frame(TEXT, '{"id":"%d"}' % i)
                      for i in range(count))
    rss_before = worker_rss_kb(n)

    sender = threading.Thread(target=c.send_raw, args=(frames,))
    sender.start()

    # the server is still there for others while the flood goes on
    other = n.client()
    assert other.request({"id": "x", "action": "listTopics"})["code"] == 200
    other.close()
    rss_during = worker_rss_kb(n)

    for i in range(count):
        r = c.recv_json()
        assert r["id"] == str(i) and r["code"] == 400
    sender.join()
    # the queues stayed bounded (loom_max_send_queue), not the whole flood
    assert rss_during - rss_before < 16 * 1024
    c.close()


def test_ping_flood_gets_every_pong(make_nginx):
    n = make_nginx(location="loom_max_send_queue 64k;")
    c = n.client()
    count = 50000
    frames = b"".join(encode_frame(PING, b"%d" % i) for i in range(count))
    sender = threading.Thread(target=c.send_raw, args=(frames,))
    sender.start()
    for i in range(count):
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (PONG, b"%d" % i)
    sender.join()
    c.close()


def test_frame_of_2_to_the_62_bytes(nginx):
    c = nginx.client()
    c.send_raw(struct.pack("!BBQ", 0x81, 0xFF, 1 << 62) + b"mask")
    assert c.expect_close().close_code() == 1009
    c.expect_eof()


def test_deeply_nested_json(nginx):
    c = nginx.client()
    register(c, "deep", {"d": None})
    deep = "[" * 10000 + "]" * 10000
    c.send_text('{"id":"1","action":"publish","topic":"deep","data":'
                '{"d":%s}}' % deep)
    r = c.recv_json()
    assert (r["code"], r["message"]) == (400, "exceeded max depth")
    # 32 levels are fine by default, 33 are not
    ok = "[" * 30 + "]" * 30
    c.send_text('{"id":"2","action":"publish","topic":"deep","data":'
                '{"d":%s},"requireAck":true}' % ok)
    assert c.recv_json()["code"] == 200
    bad = "[" * 31 + "]" * 31
    c.send_text('{"id":"3","action":"publish","topic":"deep","data":'
                '{"d":%s}}' % bad)
    assert c.recv_json()["message"] == "exceeded max depth"
    c.close()


def test_large_json_up_to_the_limit(make_nginx):
    n = make_nginx(location="loom_max_message_size 2m;")
    a = n.client()
    b = n.client()
    register(a, "big", {"blob": None})
    subscribe(b, "big")
    blob = "b" * (1900 * 1024)
    a.send_json({"id": "1", "action": "publish", "topic": "big",
                 "data": {"blob": blob}, "requireAck": True})
    assert a.recv_json()["code"] == 200
    assert b.recv_json()["data"]["blob"] == blob
    a.send_json({"id": "2", "action": "publish", "topic": "big",
                 "data": {"blob": blob + "x" * (200 * 1024)}})
    assert a.expect_close().close_code() == 1009
    b.close()


def test_huge_topic_name(nginx):
    c = nginx.client()
    r = c.request({"id": "1", "action": "subscribe", "topic": "t" * 100000})
    assert (r["code"], r["message"]) == (400, "topic name is longer than "
                                              "256 bytes")
    c.close()


def test_thousands_of_subscriptions_on_one_connection(nginx):
    c = nginx.client()
    count = 1024
    c.send_raw(b"".join(encode_frame(TEXT, json.dumps(
        {"id": "r%d" % i, "action": "registerTopic", "topic": "many-%d" % i,
         "data": {"v": None}})) for i in range(count + 1)))
    c.send_raw(b"".join(encode_frame(TEXT, json.dumps(
        {"id": "s%d" % i, "action": "subscribe", "topic": "many-%d" % i,
         "requireAck": True})) for i in range(count + 1)))
    for i in range(count):
        assert c.recv_json() == {"id": "s%d" % i, "action": "subscribe",
                                 "code": 200, "type": "response"}
    r = c.recv_json()
    assert (r["code"], r["message"]) == (
        400, "too many subscriptions on this connection, the limit is 1024")
    st = nginx.status()
    assert st["subscriptions"] == count and st["topics_subscribed"] == count

    # one publish reaches it on the last topic
    p = nginx.client()
    p.send_json({"id": "p", "action": "publish", "topic": "many-1023",
                 "data": {"v": 1}})
    assert c.recv_json()["topic"] == "many-1023"

    c.close()
    wait_for(lambda: nginx.status()["subscriptions"] == 0,
             what="the subscriptions to go with the connection")
    p.close()


def test_escaped_lone_surrogate_in_a_string(nginx):
    c = nginx.client()
    # valid JSON text, but not a valid character: decoded to U+FFFD
    c.send_text('{"id":"1","action":"subscribe","topic":"\\ud800"}')
    r = c.recv_json()
    assert r["message"] == "topic doesn't exist for \ufffd"
    c.close()


def test_invalid_utf8_in_binary_json(nginx):
    c = nginx.client()
    c.send_frame(0x2, b'{"id":"1","action":"get","topic":"\xc0\xaf"}')
    r = c.recv_json()
    assert (r["code"], r["message"]) == (400, "message is not valid UTF-8")
    c.close()


def test_many_connections_against_limit_conn(make_nginx):
    n = make_nginx(
        http="limit_conn_zone $binary_remote_addr zone=perip:1m;",
        location="limit_conn perip 100;")
    opened, refused = [], 0
    for _ in range(150):
        try:
            opened.append(n.client())
        except Exception as e:
            assert getattr(e, "status", None) == 503, e
            refused += 1
    assert (len(opened), refused) == (100, 50)
    assert n.status()["connections"] == 100
    for c in opened[:10]:
        c.close()
    # closed connections give their places back
    wait_for(lambda: n.status()["connections"] == 90, what="closes")
    more = [n.client() for _ in range(10)]
    for c in opened[10:] + more:
        c.abort()


def test_client_that_vanishes_mid_frame(nginx):
    c = nginx.client(headers={"ClientId": "gone"})
    register(c, "vanish", {"v": None})
    subscribe(c, "vanish")
    c.send_raw(encode_frame(TEXT, LIST)[:5])
    c.abort()
    wait_for(lambda: nginx.status()["connections"] == 0, what="cleanup")
    assert nginx.status()["subscriptions"] == 0
    again = WSClient("127.0.0.1", nginx.port, headers={"ClientId": "gone"})
    again.close()


def smallest_zone(workdir, redis_port):
    """The smallest loom_zone_size nginx takes, as its error says it."""
    probe = Nginx(os.path.join(workdir, "probe"), redis_port,
                  http="loom_zone_size 8k;")
    r = probe.cmd("-t")
    m = re.search(r"it must be at least (\d+)", r.stderr)
    assert r.returncode != 0 and m, r.stderr
    return int(m.group(1))


def test_full_zone_refuses_client_ids_with_503(workdir, redis_server,
                                               make_nginx):
    # the smallest zone, plus a few pages for ClientIds
    size = smallest_zone(workdir, redis_server.port) + 4 * 4096
    n = make_nginx(http="loom_zone_size %d;" % size, connections=4096,
                   main="worker_rlimit_nofile 8192;")
    opened = []
    while True:
        try:
            opened.append(n.client(headers={"ClientId": "zone-%d"
                                            % len(opened)}))
        except Exception as e:
            assert getattr(e, "status", None) == 503, e
            assert e.body == b"server is out of memory\n"
            break
        assert len(opened) < 3000
    assert "raise \"loom_zone_size\"" in n.log()
    # clients without an id need no room, and room comes back on close
    anonymous = n.client()
    assert anonymous.request({"id": "1", "action": "listTopics"})["code"] \
        == 200
    opened.pop().close()
    wait_for(lambda: n.status()["connections"] == len(opened) + 1,
             what="the close")
    again = n.client(headers={"ClientId": "zone-again"})
    again.close()
    anonymous.close()
    for c in opened:
        c.abort()
