"""Tokens: HS256, RS256 and ES256 accepted; expired, not yet valid, bad
signature, wrong algorithm (HS256 made with the RS256 public key, alg
none), wrong iss/aud and a sub with pattern characters refused with 401;
sub as the ClientId (409 taken, 400 another ClientId header); a session
closed with 4001 when its token expires, unless refreshToken extends it."""

import os
import subprocess
import time

import pytest

from authtools import (SECRET, ECKey, RSAKey, bearer, claims, hs256,
                       unsigned, write)
from conftest import NGINX, NGINX_ENV, answer
from test_auth import assert_unauthorized, refused
from wsclient import WSClient

PERMS = {"publish": ["chat/{sub}"], "subscribe": ["chat/**"],
         "admin": ["chat/**"]}


@pytest.fixture(scope="module")
def rsa_key():
    return RSAKey()


def hs_nginx(make_nginx, workdir, extra=""):
    sec = write(os.path.join(workdir, "jwt.secret"), SECRET + b"\n")
    return make_nginx(location="loom_jwt HS256 %s %s;" % (sec, extra))


def connect(n, tok, headers=None):
    h = bearer(tok)
    h.update(headers or {})
    return WSClient("127.0.0.1", n.port, headers=h)


def test_hs256_valid_and_claims(make_nginx, workdir):
    n = hs_nginx(make_nginx, workdir)
    a = connect(n, hs256(claims("alice", perms=PERMS)))
    b = connect(n, hs256(claims("bob", perms=PERMS)))
    r = a.request({"id": "r", "action": "registerTopic", "topic": "chat/alice",
                   "data": {"m": None}, "requireAck": True})
    assert r["code"] == 200, r
    r = b.request({"id": "s", "action": "subscribe", "topic": "chat/alice",
                   "requireAck": True})
    assert r == answer("s", "subscribe")
    r = b.request({"id": "p", "action": "publish", "topic": "chat/alice",
                   "data": {"m": 1}, "requireAck": True})
    assert r == answer("p", "publish", 403, "forbidden: chat/alice")
    r = a.request({"id": "p", "action": "publish", "topic": "chat/alice",
                   "data": {"m": 1}, "requireAck": True})
    assert r == answer("p", "publish")
    d = b.recv_json()
    assert d["senderId"] == "alice", d
    a.close()
    b.close()
    # no dataloom claim: nothing allowed
    c = connect(n, hs256(claims("carol")))
    r = c.request({"id": "s", "action": "subscribe", "topic": "chat/alice",
                   "requireAck": True})
    assert r == answer("s", "subscribe", 403, "forbidden: chat/alice")
    c.close()


def test_refused_tokens(make_nginx, workdir, rsa_key):
    n = hs_nginx(make_nginx, workdir, "iss=https://id.example aud=loom")
    ok = dict(iss="https://id.example", aud="loom", perms=PERMS)
    good = hs256(claims(**ok))
    c = connect(n, good)
    c.close()
    now = int(time.time())
    bad = [
        hs256(claims(ttl=-5, **ok)),                          # expired
        hs256(claims(nbf=now + 600, **ok)),                   # not yet
        hs256(claims(iat=now + 600, **ok)),                   # future iat
        hs256(claims(**ok), secret=b"another secret, 32 bytes long....."),
        good[:-4] + ("AAAA" if good[-4:] != "AAAA" else "BBBB"),
        unsigned(claims(**ok)),                               # alg none
        hs256(claims(**ok), header={"alg": "hs256"}),
        rsa_key.sign(claims(**ok)),                           # RS256
        hs256(claims(**dict(ok, iss="https://evil.example"))),
        hs256(claims(**dict(ok, aud="other"))),
        hs256(claims(iss="https://id.example", perms=PERMS)),  # no aud
        hs256(claims(sub="a*", **ok)),
        hs256(claims(sub="a/b", **ok)),
        hs256(claims(sub="{client}", **ok)),
        hs256({k: v for k, v in claims(**ok).items() if k != "exp"}),
    ]
    for tok in bad:
        assert_unauthorized(refused(n, bearer(tok)))
        assert_unauthorized(refused(n, {"Sec-WebSocket-Protocol":
                                        "dataloom.token." + tok}))
    assert n.status()["connections_total"] == 1


def test_rs256_and_algorithm_confusion(make_nginx, workdir, rsa_key):
    pub = write(os.path.join(workdir, "rsa.pub"), rsa_key.public_pem)
    n = make_nginx(location="loom_jwt RS256 %s leeway=2s;" % pub)
    c = connect(n, rsa_key.sign(claims(perms=PERMS)))
    r = c.request({"id": "r", "action": "registerTopic", "topic": "chat/x",
                   "data": {"m": None}, "requireAck": True})
    assert r["code"] == 200, r
    c.close()
    # HS256 with the public key as the secret: anyone can make it
    forged = hs256(claims(perms=PERMS), secret=rsa_key.public_pem)
    assert_unauthorized(refused(n, bearer(forged)))
    assert_unauthorized(refused(n, bearer(unsigned(claims(perms=PERMS)))))
    other = RSAKey()
    assert_unauthorized(refused(n, bearer(other.sign(claims(perms=PERMS)))))


def test_es256(make_nginx, workdir):
    k = ECKey()
    pub = write(os.path.join(workdir, "ec.pub"), k.public_pem)
    n = make_nginx(location="loom_jwt ES256 %s;" % pub)
    c = connect(n, k.sign(claims(perms=PERMS)))
    c.close()
    assert_unauthorized(refused(n, bearer(ECKey().sign(claims()))))


def test_sub_is_the_client_id(make_nginx, workdir):
    n = hs_nginx(make_nginx, workdir)
    a = connect(n, hs256(claims("alice", perms=PERMS)))
    e = refused(n, bearer(hs256(claims("alice", perms=PERMS))))
    assert (e.status, e.body) == (409, b"client ID already exists\n")
    e = refused(n, dict(bearer(hs256(claims("bob", perms=PERMS))),
                        ClientId="mallory"))
    assert e.status == 400
    assert e.body == b"\"ClientId\" differs from the token's subject\n"
    b = connect(n, hs256(claims("bob", perms=PERMS)), {"ClientId": "bob"})
    b.close()
    a.close()


def test_expiry_closes_with_4001(make_nginx, workdir):
    n = hs_nginx(make_nginx, workdir, "leeway=1s")
    c = connect(n, hs256(claims(ttl=1, perms=PERMS)))
    start = time.monotonic()
    f = c.expect_close(code=4001, timeout=10)
    assert f.close_reason() == "token expired", f.payload
    assert time.monotonic() - start >= 1.0
    c.abort()


def test_refresh_token(make_nginx, workdir):
    n = hs_nginx(make_nginx, workdir)
    c = connect(n, hs256(claims("alice", ttl=2, perms=PERMS)))

    def refresh(tok, rid="f"):
        return c.request({"id": rid, "action": "refreshToken",
                          "data": {"token": tok}})

    r = refresh(hs256(claims("bob", ttl=60, perms=PERMS)))
    assert r == answer("f", "refreshToken", 403,
                       "forbidden: the token is for another subject")
    r = refresh(hs256(claims("alice", ttl=-1, perms=PERMS)))
    assert r == answer("f", "refreshToken", 401, "unauthorized: token expired")
    r = refresh("not a token")
    assert r["code"] == 401, r
    r = c.request({"id": "f", "action": "refreshToken", "data": {}})
    assert r["code"] == 400, r
    # a new token, with other permissions: admin no longer allowed
    r = refresh(hs256(claims("alice", ttl=60,
                             perms={"subscribe": ["chat/**"]})))
    assert r == answer("f", "refreshToken")
    r = c.request({"id": "x", "action": "registerTopic", "topic": "chat/a",
                   "data": {"m": None}, "requireAck": True})
    assert r == answer("x", "registerTopic", 403, "forbidden: chat/a")
    # the first token's expiry has passed: still open
    time.sleep(3)
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["code"] == 200, r
    c.close()
    # a token from the query argument is refreshed alike
    d = WSClient("127.0.0.1", n.port,
                 path="/ws?access_token=" + hs256(claims("dave")))
    r = d.request({"id": "f", "action": "refreshToken",
                   "data": {"token": hs256(claims("dave"))}})
    assert r == answer("f", "refreshToken")
    d.close()


def test_configuration_errors(make_nginx, workdir, rsa_key):
    n = make_nginx()
    short = write(os.path.join(workdir, "short"), b"too short")
    pub = write(os.path.join(workdir, "rsa.pub"), rsa_key.public_pem)
    for directive, want in (
            ("loom_jwt HS512 %s;" % short, "unknown algorithm"),
            ("loom_jwt HS256 %s;" % short, "loom_jwt"),
            ("loom_jwt HS256 %s;" % pub, "loom_jwt"),
            ("loom_jwt RS256 %s leeway=2d;" % pub, "at most 1 day"),
            ("loom_jwt RS256 %s foo=1;" % pub, "invalid parameter"),
            ("loom_jwt RS256 /nonexistent;", "loom_jwt"),
            ("loom_jwt HS256;", "needs an algorithm and a key file"),
            ("loom_jwt off; loom_jwt off;", "is duplicate")):
        conf = open(n.conf).read().replace(
            "loom;", "loom; " + directive, 1)
        path = os.path.join(workdir, "bad.conf")
        with open(path, "w") as f:
            f.write(conf)
        env = dict(os.environ)
        env.update(NGINX_ENV)
        if "ASAN_OPTIONS" in env:
            env["ASAN_OPTIONS"] += ":detect_leaks=0"
        r = subprocess.run([NGINX, "-t", "-p", n.prefix, "-c", path,
                            "-e", os.path.join(workdir, "t.log")],
                           capture_output=True, text=True, env=env)
        assert r.returncode != 0, directive
        assert want in r.stderr, (directive, r.stderr)


def test_jwt_off_drops_the_inherited_one(make_nginx, workdir):
    sec = write(os.path.join(workdir, "jwt.secret"), SECRET)
    n = make_nginx(server="loom_jwt HS256 %s;" % sec,
                   location="loom_jwt off;")
    c = WSClient("127.0.0.1", n.port)
    c.close()
    m = make_nginx(server="loom_jwt HS256 %s;" % sec)
    assert_unauthorized(refused(m))
    connect(m, hs256(claims())).close()
