"""Where a credential may be: Authorization (raw or Bearer), the
access_token query argument, a dataloom.token. entry of
Sec-WebSocket-Protocol; 401 "unauthorized\\n" with nothing upgraded
otherwise, and the token entry never named in the 101."""

import os

import pytest

from authtools import SECRET, bearer, claims, hs256, write, write_keyfile
from test_auth import accepted, assert_unauthorized, refused
from wsclient import WSClient

ALL = {"publish": ["**"], "subscribe": ["**"], "admin": ["**"]}


@pytest.fixture
def authed(make_nginx, workdir):
    kf = write_keyfile(os.path.join(workdir, "keys.json"),
                       [("k1", "key-one", ALL)])
    sec = write(os.path.join(workdir, "jwt.secret"), SECRET + b"\n")
    return make_nginx(location="loom_auth_file %s; loom_jwt HS256 %s; "
                               "loom_api_key master;" % (kf, sec))


def client(n, path="/ws", headers=None):
    return WSClient("127.0.0.1", n.port, path=path, headers=headers)


def listed(c):
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["code"] == 200, r
    return r


def test_authorization_header(authed):
    tok = hs256(claims(perms=ALL))
    for h in ({"Authorization": "key-one"}, bearer("key-one"),
              {"Authorization": "bearer  key-one"}, bearer(tok),
              {"Authorization": tok}, {"Authorization": "master"},
              bearer("master")):
        accepted(authed, h)
    for h in ({}, {"Authorization": "key-two"}, bearer("key-one2"),
              bearer(tok + "x"), {"Authorization": "Basic key-one"}):
        assert_unauthorized(refused(authed, h))
    assert authed.status()["connections_total"] == 7


def test_query_argument(authed):
    tok = hs256(claims(perms=ALL))
    for q in ("access_token=key-one", "x=1&access_token=key-%6Fne",
              "access_token=" + tok, "access_token=master&y"):
        c = client(authed, "/ws?" + q)
        listed(c)
        c.close()
    for q in ("access_token=nope", "access_token=", "Access_Token=key-one",
              "access_token=key-one&access_token=key-one",
              "access_token=key-%zz", "access_token=%00"):
        c = WSClient("127.0.0.1", authed.port, path="/ws?" + q,
                     connect=False)
        with pytest.raises(Exception) as e:
            c.handshake({})
        c.abort()
        assert_unauthorized(e.value)


def test_subprotocol_entry(authed):
    tok = hs256(claims(perms=ALL))
    for value in ("dataloom.token." + tok,
                  "dataloom.v2, dataloom.token." + tok,
                  "chat,dataloom.token.key-one",
                  "dataloom.token.master , other"):
        c = client(authed, headers={"Sec-WebSocket-Protocol": value})
        # the token entry is never the selected subprotocol
        sel = c.response_headers.get("sec-websocket-protocol", "")
        assert "dataloom.token" not in sel, sel
        listed(c)
        c.close()
    for value in ("dataloom.token.", "dataloom.token.nope",
                  "dataloom.token.key-one, dataloom.token.key-one",
                  "dataloom.token.a/b", "dataloom.v2"):
        assert_unauthorized(refused(authed,
                                    {"Sec-WebSocket-Protocol": value}))


def test_order_of_sources(authed):
    # the first one present is the credential: a wrong header wins
    assert_unauthorized(refused(
        authed, {"Authorization": "wrong",
                 "Sec-WebSocket-Protocol": "dataloom.token.key-one"}))
    c = WSClient("127.0.0.1", authed.port, path="/ws?access_token=key-one",
                 connect=False)
    with pytest.raises(Exception) as e:
        c.handshake({"Sec-WebSocket-Protocol": "dataloom.token.wrong"})
    c.abort()
    assert_unauthorized(e.value)
    c = client(authed, "/ws?access_token=wrong",
               headers={"Authorization": "key-one"})
    listed(c)
    c.close()


def test_unconfigured_endpoint_ignores_credentials(nginx):
    tok = hs256(claims(perms=ALL))
    c = client(nginx, "/ws?access_token=whatever",
               headers={"Sec-WebSocket-Protocol": "dataloom.token." + tok,
                        "Authorization": "x"})
    assert "sec-websocket-protocol" not in c.response_headers
    r = c.request({"id": "r", "action": "registerTopic", "topic": "t",
                   "data": {"a": None}, "requireAck": True})
    assert r["code"] == 200, r
    c.close()


def test_refresh_needs_a_token(authed):
    c = client(authed, headers={"Authorization": "key-one"})
    r = c.request({"id": "f", "action": "refreshToken",
                   "data": {"token": hs256(claims(perms=ALL))}})
    assert r == {"id": "f", "action": "refreshToken", "code": 403,
                 "message": "forbidden: the connection has no token",
                 "type": "response"}, r
    c.close()
