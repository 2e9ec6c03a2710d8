"""API keys, and nginx's own access control in front of the broker.

loom_api_key at location, server and http level (and "off"), the raw key
and "Bearer <key>" in the Authorization header, 401 "unauthorized\\n"
before any WebSocket check, and nginx modules that keep working in front
of the loom location: allow/deny (403), limit_conn (503 for a second
concurrent WebSocket) and auth_request (401 or on to the broker).
"""

import pytest

from wsclient import HandshakeError, WSClient


def refused(n, headers=None, request=None):
    c = WSClient("127.0.0.1", n.port, connect=False)
    try:
        with pytest.raises(HandshakeError) as e:
            c.handshake(headers or {}, request=request)
    finally:
        c.abort()
    return e.value


def accepted(n, headers=None):
    c = n.client(headers=headers)
    r = c.request({"id": "l", "action": "listTopics"})
    assert (r["id"], r["code"]) == ("l", 200), r
    c.close()


def assert_unauthorized(e):
    assert e.status == 401
    assert e.body == b"unauthorized\n"
    assert e.headers["content-type"] == "text/plain; charset=utf-8"
    assert e.headers["x-content-type-options"] == "nosniff"


def test_no_key_configured_is_open(nginx):
    accepted(nginx)
    accepted(nginx, {"Authorization": "anything"})


def test_location_keys(make_nginx):
    n = make_nginx(location="loom_api_key k1 k2;")
    for value in ("k1", "k2", "Bearer k1", "bearer k2", "BEARER k1",
                  "Bearer   k2", "  k1  "):
        accepted(n, {"Authorization": value})
    assert_unauthorized(refused(n))
    for value in ("", "k", "k1x", "K1", "k1 k2", "Bearer", "Bearer ",
                  "Bearer k3", "Basic k1", "Bearerk1", "k2z"):
        assert_unauthorized(refused(n, {"Authorization": value}))
    # the key is checked before anything else
    assert_unauthorized(refused(n, {"Upgrade": None, "Connection": None}))
    assert_unauthorized(refused(n, request=(
        b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")))
    e = refused(n, {"Authorization": "k1", "Upgrade": None,
                    "Connection": None})
    assert (e.status, e.body) == (400, b'missing "Connection: Upgrade"\n')
    # other locations are not affected
    assert n.status()["connections"] == 0


def test_server_and_http_level_keys(make_nginx):
    n = make_nginx(server="loom_api_key s1;")
    accepted(n, {"Authorization": "s1"})
    assert_unauthorized(refused(n))
    assert_unauthorized(refused(n, {"Authorization": "h1"}))
    m = make_nginx(http="loom_api_key h1;", location="loom_api_key off;")
    accepted(m)
    accepted(m, {"Authorization": "wrong"})
    o = make_nginx(http="loom_api_key h1;")
    accepted(o, {"Authorization": "Bearer h1"})
    assert_unauthorized(refused(o, {"Authorization": "s1"}))


def test_allow_deny_in_front(make_nginx):
    n = make_nginx(location="allow 127.0.0.2; deny all;")
    e = refused(n)
    assert e.status == 403
    assert b"<title>403 Forbidden</title>" in e.body
    assert n.status()["connections_total"] == 0
    m = make_nginx(location="allow 127.0.0.1; deny all;")
    accepted(m)


def test_limit_conn_in_front(make_nginx):
    n = make_nginx(http="limit_conn_zone $binary_remote_addr zone=addr:1m;",
                   location="limit_conn addr 1;")
    first = n.client()
    e = refused(n)
    assert e.status == 503
    assert b"<title>503 Service Temporarily Unavailable</title>" in e.body
    # the first one is fine, and once it is gone there is room again
    r = first.request({"id": "l", "action": "listTopics"})
    assert r["code"] == 200
    first.close()
    accepted(n)


def test_auth_request_in_front(make_nginx):
    n = make_nginx(
        server='location = /auth { internal; '
               'if ($http_x_token = "good") { return 204; } return 401; }',
        location="auth_request /auth;")
    accepted(n, {"X-Token": "good"})
    for headers in ({}, {"X-Token": "bad"}):
        e = refused(n, headers)
        assert e.status == 401
        assert b"<title>401 Authorization Required</title>" in e.body
    # both: nginx's check first, then the key
    m = make_nginx(
        server='location = /auth { internal; '
               'if ($http_x_token = "good") { return 204; } return 401; }',
        location="auth_request /auth; loom_api_key k;")
    accepted(m, {"X-Token": "good", "Authorization": "k"})
    e = refused(m, {"X-Token": "good"})
    assert_unauthorized(e)
    e = refused(m, {"Authorization": "k"})
    assert e.status == 401
    assert b"<title>401 Authorization Required</title>" in e.body
