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
import socket
import subprocess
import time

import pytest

from authtools import hs256, claims, write_keyfile
from conftest import free_port, register, wait_for

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
    names = ["l%03d" % i for i in range(130)]
    for t in names:
        register(c, t, {"a": None}, rid=t)
    seen = []
    cursor = None
    for _ in range(20):
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


def test_http2(make_nginx):
    curl = "/usr/bin/curl"
    if not os.path.exists(curl):
        pytest.skip("no curl")
    p2 = free_port()
    n = make_nginx(server="listen 127.0.0.1:%d http2; " % p2 + API % "")
    c = n.client()
    register(c, "two", {"a": None})

    def curl2(*args):
        r = subprocess.run([curl, "-s", "-o", "-", "-w", "\n%{http_code} "
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
