"""HTTP access beside the WebSocket (docs/http.md): loom_http.

GET, POST and the list with every status they answer (200, 304, 400,
401, 403, 404, 405, 413), the ETag of a value's position, the same
validation messages as over the WebSocket, credentials as for the
WebSocket; and event streams: the snapshot, live deliveries, resume from
Last-Event-ID over two workers with a publisher on another node (no gap,
no duplicate), resync for a position no longer in history, heartbeats,
the send-queue limit, and a client that goes away.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest

from authtools import hs256, claims, write_keyfile
from conftest import free_port, register, wait_for
from relay import Relay

API = "location /api/ { loom_http heartbeat=300ms; %s }"

SCHEMA = {"n": None, "s": None}


def start(make_nginx, extra="", **kw):
    return make_nginx(server=API % extra, **kw)


def req(n, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def jreq(n, method, path, body=None, headers=None):
    status, hdrs, data = req(n, method, path, body, headers)
    return status, hdrs, json.loads(data) if data else None


def test_get_post_and_etag(make_nginx):
    n = start(make_nginx)
    c = n.client(headers={"Sec-WebSocket-Protocol": "dataloom.v2"})
    register(c, "h/a", SCHEMA)

    s, h, b = jreq(n, "GET", "/api/topics/h%2Fa")
    assert s == 200, b
    assert h["content-type"] == "application/json"
    assert b["data"] is None and b["rev"] == 0
    epoch = b["epoch"]
    assert h["etag"] == '"0:%s"' % epoch

    s, h, b = jreq(n, "POST", "/api/topics/h/a", {"n": 1, "s": "x"})
    assert (s, b) == (200, {"rev": 1}), b
    s, h, b = jreq(n, "POST", "/api/topics/h/a", '{"n": 2,\n "s": "y"}')
    assert (s, b) == (200, {"rev": 2}), b

    s, h, b = jreq(n, "GET", "/api/topics/h/a")
    assert s == 200
    assert b["data"] == {"n": 2, "s": "y"} and b["rev"] == 2
    assert b["epoch"] == epoch and b["ts"] > 0
    assert h["etag"] == '"2:%s"' % epoch

    # the stored bytes as they were sent
    s, h, raw = req(n, "GET", "/api/topics/h/a")
    assert raw.startswith(b'{"data":{"n": 2,\n "s": "y"},"rev":2,')

    # the same over the WebSocket
    r = c.request({"id": "g", "action": "get", "topic": "h/a"})
    assert r["data"] == b["data"] and r["rev"] == 2

    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-None-Match": '"2:%s"' % epoch})
    assert (s, raw) == (304, b"")
    assert h["etag"] == '"2:%s"' % epoch
    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-None-Match": '"1:%s", W/"2:%s"'
                             % (epoch, epoch)})
    assert s == 304
    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-None-Match": '"1:%s"' % epoch})
    assert s == 200
    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-None-Match": "*"})
    assert s == 304
    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-Match": '"1:%s"' % epoch})
    assert s == 412
    s, h, raw = req(n, "GET", "/api/topics/h/a",
                    headers={"If-Match": '"2:%s"' % epoch})
    assert s == 200

    # HEAD: the headers of a GET
    s, h, raw = req(n, "HEAD", "/api/topics/h/a")
    assert (s, raw) == (200, b"") and h["etag"] == '"2:%s"' % epoch


def test_post_validated_as_over_websocket(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "v", SCHEMA)

    def both(body):
        """The HTTP answer and the WebSocket one for the same data."""
        s, h, b = jreq(n, "POST", "/api/topics/v", body)
        r = c.request({"id": "p", "action": "publish", "topic": "v",
                       "data": json.loads(body), "requireAck": True})
        return s, b, r

    s, b, r = both('{"n": 1}')
    assert s == 400 and r["code"] == 400
    assert b == {"code": 400, "message": r["message"]}
    assert b["message"] == "schema doesn't match topics current schema"

    s, b, r = both('[1, 2]')
    assert s == 400 and b["message"] == r["message"], (b, r)
    s, b, r = both('"text"')
    assert s == 400 and b["message"] == r["message"], (b, r)

    # not JSON, or more than one value: nothing is published
    for body, message in [
            ('{"n": 1,', "invalid character '}' looking for beginning "
                         "of object key string"),
            ('{"n": 1} x', None),
            ('{"n":1,"s":2}, "topic": "other"', None),
            ("", "message data was null")]:
        s, h, b = jreq(n, "POST", "/api/topics/v", body)
        assert s == 400, (body, b)
        assert b["code"] == 400 and b["message"], b
        if message:
            assert b["message"] == message, (body, b)
    s, h, b = jreq(n, "POST", "/api/topics/v", b'{"n":"\xff"}')
    assert (s, b["message"]) == (400, "message is not valid UTF-8")

    s, h, b = jreq(n, "GET", "/api/topics/v")
    assert (s, b["data"]) == (200, None)


def test_not_found_and_not_allowed(make_nginx):
    n = start(make_nginx)
    for method, path in [("GET", "/api/topics/none"),
                         ("POST", "/api/topics/none"),
                         ("GET", "/api/topics/none/events"),
                         ("GET", "/api/other"),
                         ("GET", "/api/topics//events")]:
        body = {"n": 1} if method == "POST" else None
        s, h, b = jreq(n, method, path, body)
        assert s == 404, (method, path, b)
        assert b["code"] == 404 and b["message"], b
    s, h, b = jreq(n, "POST", "/api/topics/none", {"n": 1})
    assert b["message"] == "could not get topic by name: none"

    for method, path, allow in [("DELETE", "/api/topics/x",
                                 "GET, HEAD, POST"),
                                ("POST", "/api/topics", "GET, HEAD"),
                                ("POST", "/api/topics/x/events", "GET")]:
        s, h, b = jreq(n, method, path, "{}")
        assert (s, h["allow"], b["code"]) == (405, allow, 405), b


def test_message_size_limit(make_nginx):
    n = start(make_nginx, extra="loom_max_message_size 1k;"
                                " client_body_buffer_size 128;")
    # nginx's workers write the temporary file of a body
    for d in (os.path.dirname(n.prefix), n.prefix):
        os.chmod(d, 0o755)
    os.chmod(os.path.join(n.prefix, "tmp"), 0o777)
    c = n.client()
    register(c, "big", {"s": None})
    s, h, b = jreq(n, "POST", "/api/topics/big", {"s": "x" * 2000})
    assert (s, b["code"]) == (413, 413), b
    # chunked, with no length ahead
    conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    conn.request("POST", "/api/topics/big",
                 body=iter([b'{"s":"', b"y" * 1500, b'"}']),
                 encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413, r.read()
    conn.close()
    # within the limit, in nginx's temporary file (over 128 bytes)
    s, h, b = jreq(n, "POST", "/api/topics/big", {"s": "z" * 900})
    assert (s, b) == (200, {"rev": 1}), b
    s, h, b = jreq(n, "GET", "/api/topics/big")
    assert b["data"] == {"s": "z" * 900}


def test_list_pages(make_nginx):
    n = start(make_nginx)
    c = n.client()
    names = ["l%04d" % i for i in range(1300)]
    for t in names:
        c.send_json({"id": t, "action": "registerTopic", "topic": t,
                     "data": {"a": None}, "requireAck": True})
    for t in names:
        assert c.recv_json()["code"] == 200
    seen = []
    cursor = None
    pages = 0
    for _ in range(20):
        pages += 1
        path = "/api/topics" + ("?cursor=%s" % cursor if cursor else "")
        s, h, b = jreq(n, "GET", path)
        assert s == 200, b
        r = c.request({"id": "l", "action": "listTopics",
                       "data": {"cursor": cursor} if cursor else None})
        assert b["data"] == r["data"]
        assert b.get("cursor") == r.get("cursor")
        seen += [e["name"] if isinstance(e, dict) else e
                 for e in b["data"]]
        cursor = b.get("cursor")
        if not cursor:
            break
    assert sorted(seen) == names
    assert pages > 1
    s, h, b = jreq(n, "GET", "/api/topics?cursor=x1")
    assert (s, b["message"]) == (400, "cursor must be a string of digits")
    s, h, b = jreq(n, "GET", "/api/topics/")
    assert s == 200


def test_credentials_and_permissions(make_nginx, workdir):
    kf = write_keyfile(os.path.join(workdir, "keys.json"), [
        ("admin", "k-admin", {"publish": ["**"], "subscribe": ["**"],
                              "admin": ["**"]}),
        ("reader", "k-read", {"subscribe": ["p/*"]})])
    secret = os.path.join(workdir, "jwt.secret")
    from authtools import SECRET
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    n = start(make_nginx, extra="loom_auth_file %s; loom_jwt HS256 %s;"
              % (kf, secret),
              location="loom_auth_file %s;" % kf)
    c = n.client(headers={"Authorization": "k-admin"})
    register(c, "p/a", {"a": None})
    register(c, "q", {"a": None})

    for headers, path in [({}, "/api/topics/p/a"),
                          ({"Authorization": "wrong"}, "/api/topics/p/a"),
                          ({}, "/api/topics"),
                          ({}, "/api/topics/p/a/events"),
                          ({}, "/api/topics/p/a?access_token=wrong")]:
        s, h, b = jreq(n, "GET", path, headers=headers)
        assert (s, b) == (401, {"code": 401, "message": "unauthorized"}), \
            (headers, path)
    s, h, b = jreq(n, "POST", "/api/topics/p/a", {"a": 1})
    assert s == 401

    # raw, Bearer, access_token
    for headers, path in [({"Authorization": "k-read"}, "/api/topics/p/a"),
                          ({"Authorization": "Bearer k-read"},
                           "/api/topics/p/a"),
                          ({}, "/api/topics/p/a?access_token=k-read")]:
        s, h, b = jreq(n, "GET", path, headers=headers)
        assert s == 200, (headers, path, b)

    rd = {"Authorization": "k-read"}
    s, h, b = jreq(n, "POST", "/api/topics/p/a", {"a": 1}, rd)
    assert (s, b) == (403, {"code": 403, "message": "forbidden: p/a"})
    s, h, b = jreq(n, "GET", "/api/topics/q", headers=rd)
    assert (s, b["message"]) == (403, "forbidden: q")
    s, h, b = jreq(n, "GET", "/api/topics/q/events", headers=rd)
    assert (s, b["message"]) == (403, "forbidden: q")
    # the list shows what the credential may see
    s, h, b = jreq(n, "GET", "/api/topics", headers=rd)
    assert s == 200
    assert [e["name"] if isinstance(e, dict) else e
            for e in b["data"]] == ["p/a"]

    # a token, with its own permissions
    tok = hs256(claims(sub="bob", perms={"publish": ["q"]}))
    s, h, b = jreq(n, "POST", "/api/topics/q", {"a": 2},
                   {"Authorization": "Bearer " + tok})
    assert (s, b) == (200, {"rev": 1}), b
    s, h, b = jreq(n, "POST", "/api/topics/p/a", {"a": 2},
                   {"Authorization": "Bearer " + tok})
    assert s == 403
    expired = hs256(claims(sub="bob", ttl=-600, perms={"publish": ["q"]}))
    s, h, b = jreq(n, "POST", "/api/topics/q", {"a": 3},
                   {"Authorization": "Bearer " + expired})
    assert s == 401


def test_keepalive_connection(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "k", {"i": None})
    conn = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
    for i in range(1, 51):
        conn.request("POST", "/api/topics/k", body=json.dumps({"i": i}))
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {"rev": i})
        conn.request("GET", "/api/topics/k")
        r = conn.getresponse()
        assert json.loads(r.read())["data"] == {"i": i}
    conn.close()


CURL = "/usr/bin/curl"


def http2_nginx(make_nginx, topic):
    """nginx with the location on an HTTP/2 (prior knowledge) listener
    too, and its port"""
    if not os.path.exists(CURL):
        pytest.skip("no curl")
    p2 = free_port()
    n = make_nginx(server="listen 127.0.0.1:%d http2; " % p2 + API % "")
    register(n.client(), topic, {"a": None})
    return n, p2


def test_http2(make_nginx):
    n, p2 = http2_nginx(make_nginx, "two")

    def curl2(*args):
        r = subprocess.run([CURL, "-s", "-o", "-", "-w", "\n%{http_code} "
                            "%{http_version}", "--http2-prior-knowledge"]
                           + list(args), capture_output=True, text=True,
                           timeout=10)
        body, status = r.stdout.rsplit("\n", 1)
        return status, body

    url = "http://127.0.0.1:%d/api/topics/two" % p2
    assert curl2("-X", "POST", "-d", '{"a":1}', url) == ("200 2",
                                                        '{"rev":1}\n')
    status, body = curl2(url)
    assert status == "200 2" and json.loads(body)["data"] == {"a": 1}
    status, body = curl2("-X", "POST", "-d", '{"b":1}', url)
    assert status == "400 2", body
    status, body = curl2(url + "/nothing/here")
    assert status == "404 2", body


# -- event streams -------------------------------------------------------


class Stream:
    """An event stream read line by line, as EventSource parses it."""

    def __init__(self, n, topic, last_id=None, headers=None, path=None,
                 port=None, begin=True):
        self.conn = http.client.HTTPConnection("127.0.0.1",
                                               port or n.port, timeout=10)
        h = {"Accept": "text/event-stream"}
        if last_id is not None:
            h["Last-Event-ID"] = last_id
        h.update(headers or {})
        self.conn.request("GET", path or "/api/topics/%s/events" % topic,
                          headers=h)
        self.last_id = last_id
        self.heartbeats = 0
        if begin:
            self.begin()

    def begin(self):
        """Reads the response's head (a Stream made with begin=False)."""
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}

    def body(self):
        return json.loads(self.resp.read())

    def event(self):
        name, data, eid = "message", [], None
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("the stream ended")
            assert line.endswith(b"\n"), line
            line = line[:-1].decode()
            if line == "":
                if data:
                    break
                continue
            if line.startswith(":"):
                self.heartbeats += 1
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "id":
                eid = value
                self.last_id = value
            elif field == "event":
                name = value
        return {"event": name, "id": eid,
                "data": json.loads("\n".join(data))}

    def close(self):
        self.conn.close()


def publish(c, topic, data, rid="p"):
    r = c.request({"id": rid, "action": "publish", "topic": topic,
                   "data": data, "requireAck": True})
    assert r["code"] == 200, r
    return r


def test_stream_snapshot_then_live(make_nginx):
    n = start(make_nginx)
    c = n.client(headers={"Sec-WebSocket-Protocol": "dataloom.v2"})
    register(c, "e", SCHEMA)
    publish(c, "e", {"n": 1, "s": "a"})
    publish(c, "e", {"n": 2, "s": "line\nbreak"})

    st = Stream(n, "e")
    assert st.status == 200
    assert st.headers["content-type"] == "text/event-stream"
    assert st.headers["cache-control"] == "no-cache"
    ev = st.event()
    epoch = ev["data"]["epoch"]
    assert ev == {"event": "snapshot", "id": "2:%s" % epoch,
                  "data": {"data": {"n": 2, "s": "line\nbreak"},
                           "rev": 2, "epoch": epoch,
                           "ts": ev["data"]["ts"]}}

    # a delivery: its JSON, as a dataloom.v2 subscriber gets it
    ws = n.client(headers={"Sec-WebSocket-Protocol": "dataloom.v2"})
    ws.request({"id": "s", "action": "subscribe", "topic": "e",
                "requireAck": True})
    publish(c, "e", {"n": 3, "s": "b"})
    ev = st.event()
    assert ev["event"] == "message" and ev["id"] == "3:%s" % epoch
    assert ev["data"] == ws.recv_json()
    assert ev["data"]["rev"] == 3 and ev["data"]["data"] == {"n": 3,
                                                             "s": "b"}
    # a body with line breaks: several data lines, joined again
    s, h, b = jreq(n, "POST", "/api/topics/e", '{"n":4,\n"s":"c"}')
    assert s == 200
    ev = st.event()
    assert ev["id"] == "4:%s" % epoch and ev["data"]["data"] == {"n": 4,
                                                                 "s": "c"}
    # an HTTP publish has no message id and no ClientId
    assert (ev["data"]["id"], ev["data"]["senderId"]) == ("", "")
    # not stored: no id, no rev
    r = c.request({"id": "w", "action": "sendWithoutSave", "topic": "e",
                   "data": {"n": 5, "s": "d"}, "requireAck": True})
    assert r["code"] == 200
    ev = st.event()
    assert ev["id"] is None and "rev" not in ev["data"]
    assert ev["data"]["data"] == {"n": 5, "s": "d"}
    assert st.last_id == "4:%s" % epoch
    st.close()


def test_stream_errors(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "x", SCHEMA)
    st = Stream(n, "missing")
    assert st.status == 404
    assert st.body()["message"] == "topic doesn't exist for missing"
    for bad in ["abc", "1:", ":e", "12x:e", "99999999999999999999:e"]:
        st = Stream(n, "x", last_id=bad)
        assert st.status == 400, bad
        assert st.body()["message"] == \
            'Last-Event-ID must be "<rev>:<epoch>"'


def test_stream_resume_no_gap_two_workers_other_node(make_nginx):
    """Streams on a node of 2 workers drop and resume from their last id
    while a publisher on another node publishes: every stream sees every
    revision from its snapshot on, once."""
    n = start(make_nginx, extra="add_header X-Worker $pid always;",
              workers=2)
    other = make_nginx(name="publisher")
    pub = other.client()
    register(pub, "r", {"i": None})
    total = 400

    import threading
    done = threading.Event()

    def publisher():
        for i in range(1, total + 1):
            publish(pub, "r", {"i": i}, rid="p%d" % i)
            if i % 20 == 0:
                time.sleep(0.01)
        done.set()

    streams = []
    for k in range(4):
        st = Stream(n, "r")
        ev = st.event()
        assert ev["event"] == "snapshot"
        streams.append({"st": st, "revs": [ev["data"]["rev"]],
                        "workers": {st.headers["x-worker"]}})
    epoch = ev["data"]["epoch"]

    t = threading.Thread(target=publisher)
    t.start()
    try:
        reconnects = 0
        while any(s["revs"][-1] < total for s in streams):
            for s in streams:
                if s["revs"][-1] >= total:
                    continue
                for _ in range(7):
                    ev = s["st"].event()
                    assert ev["event"] == "message", ev
                    rev = ev["data"]["rev"]
                    assert ev["id"] == "%d:%s" % (rev, epoch)
                    assert ev["data"]["data"] == {"i": rev}
                    s["revs"].append(rev)
                    if rev >= total:
                        break
                if s["revs"][-1] >= total:
                    continue
                # drop, and come back where it was
                last = s["st"].last_id
                s["st"].close()
                s["st"] = Stream(n, "r", last_id=last)
                assert s["st"].status == 200
                s["workers"].add(s["st"].headers["x-worker"])
                reconnects += 1
    finally:
        t.join()
    assert done.is_set()
    assert reconnects > 20
    workers = set()
    for s in streams:
        revs = s["revs"]
        assert revs == list(range(revs[0], total + 1)), revs
        workers |= s["workers"]
        s["st"].close()
    assert len(workers) == 2, workers


def test_stream_resync(make_nginx):
    n = start(make_nginx)
    c = n.client()
    r = c.request({"id": "reg", "action": "registerTopic", "topic": "y",
                   "data": {"i": None}, "retention": {"history": 5},
                   "requireAck": True})
    assert r["code"] == 200, r
    for i in range(1, 21):
        publish(c, "y", {"i": i})
    st = Stream(n, "y")
    epoch = st.event()["data"]["epoch"]
    st.close()

    # rev 17 is in history: 18, 19, 20 are replayed, then live
    st = Stream(n, "y", last_id="17:%s" % epoch)
    assert [st.event()["id"] for _ in range(3)] == [
        "%d:%s" % (i, epoch) for i in (18, 19, 20)]
    publish(c, "y", {"i": 21})
    assert st.event()["data"]["rev"] == 21
    st.close()

    # rev 3 is not: resync to the value, then live from it
    st = Stream(n, "y", last_id="3:%s" % epoch)
    ev = st.event()
    assert ev["event"] == "resync" and ev["id"] == "21:%s" % epoch
    assert ev["data"] == {"action": "resync", "topic": "y",
                          "reason": "gap", "data": {"i": 21}, "rev": 21,
                          "epoch": epoch, "ts": ev["data"]["ts"],
                          "type": "event"}
    publish(c, "y", {"i": 22})
    ev = st.event()
    assert (ev["event"], ev["data"]["rev"]) == ("message", 22)
    st.close()

    # an epoch that is not the topic's, or none: resync
    for last in ["5:someone-else", "5", "0:nobody"]:
        st = Stream(n, "y", path="/api/topics/y/events?lastEventId=%s"
                    % last.replace(":", "%3A"))
        ev = st.event()
        assert (ev["event"], ev["data"]["reason"]) == ("resync", "epoch")
        assert ev["id"] == "22:%s" % epoch
        st.close()

    # registered again: a new epoch
    r = c.request({"id": "u", "action": "unregisterTopic", "topic": "y",
                   "requireAck": True})
    assert r["code"] == 200
    register(c, "y", {"i": None})
    st = Stream(n, "y", last_id="22:%s" % epoch)
    ev = st.event()
    assert (ev["event"], ev["data"]["reason"]) == ("resync", "epoch")
    assert ev["data"]["epoch"] != epoch and ev["data"]["rev"] == 0
    assert ev["id"] == "0:%s" % ev["data"]["epoch"]
    st.close()


def test_stream_heartbeat_and_disconnect(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "hb", {"i": None})
    st = Stream(n, "hb")
    st.event()
    assert n.status()["subscriptions"] == 1
    # heartbeat=300ms: comments while nothing happens
    t0 = time.monotonic()
    while st.heartbeats < 3:
        line = st.resp.readline()
        assert line in (b":\n", b"\n"), line
        if line == b":\n":
            st.heartbeats += 1
    assert time.monotonic() - t0 < 5
    # the client goes: the subscriber goes with it
    st.conn.sock.shutdown(socket.SHUT_RDWR)
    st.close()
    wait_for(lambda: n.status()["subscriptions"] == 0,
             what="the stream's subscription to end")
    assert n.status()["topics_subscribed"] == 0


def test_stream_ends_when_unregistered(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "gone", {"i": None})
    st = Stream(n, "gone")
    st.event()
    r = c.request({"id": "u", "action": "unregisterTopic", "topic": "gone",
                   "requireAck": True})
    assert r["code"] == 200
    with pytest.raises((EOFError, http.client.IncompleteRead)):
        for _ in range(100):
            st.event()
    assert "event stream closed: the topic was unregistered" in n.log()


def test_stream_slow_consumer(make_nginx):
    n = start(make_nginx, extra="loom_max_send_queue 64k;")
    c = n.client()
    register(c, "slow", {"s": None})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", n.port))
    s.sendall(b"GET /api/topics/slow/events HTTP/1.1\r\n"
              b"Host: x\r\n\r\n")
    time.sleep(0.2)
    blob = "x" * 20000
    for i in range(300):
        publish(c, "slow", {"s": blob}, rid="p%d" % i)
        if "the client reads too slowly" in n.log():
            break
    wait_for(lambda: "event stream closed: the client reads too slowly"
             in n.log(), what="the slow stream to be closed")
    wait_for(lambda: n.status()["subscriptions"] == 0,
             what="its subscription to end")
    assert n.status()["slow_consumers"] == 1
    s.close()


def test_stream_over_http2(make_nginx):
    n, p2 = http2_nginx(make_nginx, "s2")
    c = n.client()
    proc = subprocess.Popen([CURL, "-s", "-N", "--http2-prior-knowledge",
                             "--max-time", "3", "-w", "%{http_version}",
                             "http://127.0.0.1:%d/api/topics/s2/events"
                             % p2], stdout=subprocess.PIPE)
    wait_for(lambda: n.status()["subscriptions"] == 1,
             what="the stream to subscribe")
    for i in range(1, 4):
        publish(c, "s2", {"a": i})
    out = proc.communicate(timeout=10)[0].decode()
    assert out.endswith("2"), out
    events = [e for e in out[:-1].split("\n\n") if e.startswith("event")
              or e.startswith("id")]
    assert events[0].startswith("event: snapshot\nid: 0:"), out
    assert [json.loads(e.split("data: ", 1)[1])["data"]
            for e in events[1:]] == [{"a": 1}, {"a": 2}, {"a": 3}], out
    assert ":\n\n:\n\n" in out
    # curl's end (a reset stream) ends the subscription
    wait_for(lambda: n.status()["subscriptions"] == 0,
             what="the stream's subscription to end")


def test_stream_http10_and_shutdown(make_nginx):
    n = start(make_nginx)
    c = n.client()
    register(c, "old", {"a": None})
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /api/topics/old/events HTTP/1.0\r\n\r\n")
    f = s.makefile("rb")
    assert f.readline() == b"HTTP/1.1 200 OK\r\n"
    headers = {}
    while True:
        line = f.readline()
        if line == b"\r\n":
            break
        k, v = line.decode().split(":", 1)
        headers[k.lower()] = v.strip()
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers
    assert f.readline() == b"event: snapshot\n"
    publish(c, "old", {"a": 1})
    lines = []
    while len(lines) < 2 or lines[-1] != b"\n" or not lines[-2].startswith(
            b"data: {\"id\""):
        lines.append(f.readline())
    assert json.loads(lines[-2][6:])["data"] == {"a": 1}
    # a graceful shutdown ends the stream: the connection closes
    n.stop()
    rest = f.read()
    assert not rest.strip(b":\n"), rest
    s.close()


def test_post_refused_by_json_schema_has_errors(make_nginx):
    """contract.md: a JSON Schema topic's refusal carries "errors"; over
    HTTP it is the same answer, with the same members."""
    n = start(make_nginx)
    c = n.client()
    r = c.request({"id": "r", "action": "registerTopic", "topic": "js",
                   "schemaType": "json-schema", "requireAck": True,
                   "data": {"type": "object",
                            "properties": {"a": {"type": "integer"}},
                            "required": ["a"]}})
    assert r["code"] == 200, r
    s, h, b = jreq(n, "POST", "/api/topics/js", {"a": "text"})
    r = c.request({"id": "p", "action": "publish", "topic": "js",
                   "data": {"a": "text"}, "requireAck": True})
    assert r["code"] == 400 and r["errors"], r
    expected = {k: v for k, v in r.items() if k not in ("id", "action",
                                                        "type")}
    assert (s, b) == (400, expected)


def test_names_from_the_path(make_nginx):
    n = start(make_nginx, extra="loom_max_topic_length 40;")
    c = n.client()
    name = 'odd "name"/ü?&#%+x/events'
    register(c, name, {"a": None})
    path = "/api/topics/" + urllib.parse.quote(name, safe="")
    s, h, b = jreq(n, "POST", path, {"a": 1})
    assert (s, b) == (200, {"rev": 1}), b
    s, h, b = jreq(n, "GET", path)
    assert (s, b["data"]) == (200, {"a": 1})
    r = c.request({"id": "g", "action": "get", "topic": name})
    assert r["data"] == {"a": 1}
    # its stream: the last "/events" as sent is the stream's
    st = Stream(n, None, path=path + "/events")
    assert st.event()["data"]["data"] == {"a": 1}
    st.close()
    s, h, b = jreq(n, "GET", "/api/topics/" + "x" * 41)
    assert (s, b["message"]) == (400, "topic name is longer than 40 bytes")
    s, h, b = jreq(n, "GET", "/api/topics/%FF")
    assert (s, b["message"]) == (400, "topic name is not valid UTF-8")


def test_stream_ends_when_the_token_expires(make_nginx, workdir):
    from authtools import SECRET
    secret = os.path.join(workdir, "jwt.secret")
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    n = start(make_nginx, extra="loom_jwt HS256 %s leeway=0s;" % secret)
    admin = hs256(claims(sub="admin", perms={"admin": ["**"]}))
    c = n.client(headers={"Authorization": "Bearer " + admin})
    register(c, "tok", {"a": None})
    tok = hs256(claims(sub="eve", ttl=2, perms={"subscribe": ["tok"]}))
    st = Stream(n, "tok", path="/api/topics/tok/events?access_token=" + tok)
    assert st.status == 200
    st.event()
    t0 = time.monotonic()
    with pytest.raises((EOFError, http.client.IncompleteRead)):
        for _ in range(100):
            st.event()
    assert time.monotonic() - t0 < 5
    assert "event stream closed: the token expired" in n.log()


def test_values_jansson_would_not_take(make_nginx):
    """Values are given back as stored, whatever their numbers and
    strings: an integer beyond 64 bits, a NUL in a string."""
    n = start(make_nginx)
    c = n.client()
    register(c, "raw", {"big": None, "s": None})
    body = '{"big":123456789012345678901234567890,"s":"a\\u0000b"}'
    s, h, b = req(n, "POST", "/api/topics/raw", body)
    assert s == 200, b
    s, h, raw = req(n, "GET", "/api/topics/raw")
    assert s == 200
    assert raw.startswith(b'{"data":' + body.encode() + b',"rev":1,'), raw
    st = Stream(n, "raw")
    ev = st.event()
    assert ev["event"] == "snapshot"
    assert ev["data"]["data"] == json.loads(body)
    s, h, b = req(n, "POST", "/api/topics/raw", body)
    assert s == 200
    ev = st.event()
    assert (ev["data"]["rev"], ev["data"]["data"]) == (2, json.loads(body))
    st.close()


def test_shutdown_while_requests_wait_for_redis(make_nginx, redis_server):
    """A graceful shutdown while a publish and a stream's first answer
    still wait for Redis: the old worker stays until both are answered,
    then closes the connections itself; none is left open (nginx's
    "open socket left" alert), the publish is acked, and the stream ends
    behind its snapshot, for the client to come back to a new worker."""
    relay = Relay(redis_server.port)
    try:
        n = start(make_nginx, redis_port=relay.port)
        c = n.client()
        register(c, "drain", SCHEMA)
        c.close()
        r = redis_server.client()
        # a first publish: the worker knows the topic's schema from then on
        assert jreq(n, "POST", "/api/topics/drain",
                    {"n": 0, "s": "a"})[0] == 200

        # Redis still takes the commands, its answers wait in the relay
        relay.freeze(down=True)
        stream = Stream(n, "drain", begin=False)
        post = http.client.HTTPConnection("127.0.0.1", n.port, timeout=10)
        post.request("POST", "/api/topics/drain",
                     json.dumps({"n": 1, "s": "b"}))
        # the publish is stored, its ack waits; so does the stream's answer
        wait_for(lambda: r.hget("loom:{t:drain}", "rev") == b"2",
                 what="the publish to reach Redis")

        os.kill(n.master, signal.SIGQUIT)
        wait_for(lambda: "gracefully shutting down" in n.log(),
                 what="the worker to start shutting down")
        relay.thaw()

        p = post.getresponse()
        assert (p.status, json.loads(p.read())) == (200, {"rev": 2})
        stream.begin()
        assert stream.status == 200
        # the snapshot (of either revision: the two requests came on two
        # connections), what follows it up to rev 2, then the end
        events = []
        with pytest.raises((EOFError, http.client.IncompleteRead)):
            while True:
                events.append(stream.event())
        assert events[0]["event"] == "snapshot", events
        revs = [e["data"]["rev"] for e in events]
        assert revs in ([1, 2], [2]), events
        assert events[-1]["data"]["data"] == {"n": 1, "s": "b"}
        post.close()
        stream.close()
        wait_for(lambda: not n.worker_pids(), what="the workers to exit")
        assert "open socket" not in n.log()
    finally:
        relay.close()
