"""How the module reaches Redis: a password, an ACL user, a database, a
key prefix shared by nobody else, a unix socket, a host name."""

import os
import socket

import pytest

from conftest import Nginx, Redis, register, subscribe, wait_for


def roundtrip(n, topic):
    c = n.client()
    register(c, topic, {"v": None})
    subscribe(c, topic)
    c.send_json({"id": "p", "action": "publish", "topic": topic,
                 "data": {"v": topic}, "requireAck": True})
    assert c.recv_json()["data"] == {"v": topic}
    assert c.recv_json()["code"] == 200
    c.close()


def test_password(workdir, make_nginx):
    r = Redis(os.path.join(workdir, "pw"), password="s3cret").start()
    try:
        n = make_nginx(redis_port=r.port,
                       http="loom_redis_password s3cret;")
        roundtrip(n, "pw")
        assert r.client().hexists("loom:{t:pw}", "value")
    finally:
        r.kill()


def test_acl_user(workdir, make_nginx):
    r = Redis(os.path.join(workdir, "acl"), password="admin").start()
    try:
        r.client().acl_setuser("loom", enabled=True, passwords=["+pw"],
                               keys=["loom:*"], channels=["loom:*"],
                               commands=["+@all"])
        n = make_nginx(redis_port=r.port,
                       http="loom_redis_user loom; loom_redis_password pw;")
        roundtrip(n, "acl")
    finally:
        r.kill()


def test_wrong_password_keeps_links_down(workdir):
    r = Redis(os.path.join(workdir, "wrong"), password="right").start()
    n = Nginx(os.path.join(workdir, "nginx"), r.port,
              http="loom_redis_password wrong;")
    try:
        n.start(wait_redis=False)
        wait_for(lambda: "WRONGPASS" in n.log(), what="the AUTH error")
        st = n.status()
        assert st["redis"]["workers"][0]["redis_command"] != "up"
        c = n.client()
        r2 = c.request({"id": "1", "action": "listTopics"})
        assert r2["code"] == 500
        assert r2["message"].startswith("storage unavailable: ")
        c.close()
        n.stop()
        assert n.bad_log_lines() == []
    finally:
        n.kill()
        r.kill()


def test_database(redis_server, make_nginx):
    n = make_nginx(http="loom_redis_db 3;")
    roundtrip(n, "db3")
    client = redis_server.client()
    assert not client.exists("loom:{t:db3}")
    client.select(3)
    assert client.exists("loom:{t:db3}")


def test_prefixes_keep_installations_apart(redis_server, make_nginx):
    a = make_nginx(name="a", http="loom_redis_prefix app1:;")
    b = make_nginx(name="b", http="loom_redis_prefix app2:;")
    ca = a.client()
    cb = b.client()
    register(ca, "same", {"v": None})
    subscribe(ca, "same")
    r = cb.request({"id": "s", "action": "subscribe", "topic": "same"})
    assert r["message"] == "topic doesn't exist for same"
    register(cb, "same", {"w": None})
    subscribe(cb, "same")
    cb.send_json({"id": "b", "action": "publish", "topic": "same",
                  "data": {"w": 1}})
    ca.send_json({"id": "a", "action": "publish", "topic": "same",
                  "data": {"v": 1}})
    assert ca.recv_json()["id"] == "a"
    assert cb.recv_json()["id"] == "b"
    keys = sorted(k.decode() for k in redis_server.client().keys("*"))
    # each topic's hash and its history stream, under each prefix
    assert keys == ["app1:topics", "app1:{t:same}", "app1:{t:same}:h",
                    "app2:topics", "app2:{t:same}", "app2:{t:same}:h"]
    ca.close()
    cb.close()


def test_unix_socket(workdir, make_nginx):
    os.chmod(workdir, 0o755)
    d = os.path.join(workdir, "unix")
    sock = os.path.join(d, "redis.sock")
    r = Redis(d, args=["--unixsocket", sock, "--unixsocketperm",
                       "777"]).start()
    os.chmod(d, 0o755)
    try:
        n = make_nginx(redis_port=r.port, http="")
        # the configuration names the socket instead of the port
        conf = open(n.conf).read().replace(
            "loom_redis 127.0.0.1:%d;" % r.port, "loom_redis unix:%s;" % sock)
        open(n.conf, "w").write(conf)
        n.reload()
        wait_for(lambda: n.status()["redis"]["address"] == "unix:" + sock,
                 what="the new workers")
        wait_for(n.redis_up, what="the unix socket links")
        roundtrip(n, "unix")
    finally:
        r.kill()


def localhost_addresses():
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(
            "localhost", None, proto=socket.IPPROTO_TCP)})
    except socket.gaierror:
        return []


def test_host_name_is_resolved_at_configuration(workdir, make_nginx):
    # whatever "localhost" means on this machine (127.0.0.1, ::1 or both;
    # nothing at all in a chroot without /etc/hosts): Redis listens on
    # every address the name has, and the links use them
    addrs = localhost_addresses()
    if not addrs:
        pytest.skip("\"localhost\" does not resolve here")
    r = Redis(os.path.join(workdir, "named"), host=addrs[0],
              args=["--bind"] + addrs).start()
    try:
        n = make_nginx(redis_port=r.port,
                       redis_addr="localhost:%d" % r.port)
        assert n.status()["redis"]["address"] == "localhost:%d" % r.port
        roundtrip(n, "named")
    finally:
        r.kill()


def test_ipv6_address(workdir, make_nginx):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    r = Redis(os.path.join(workdir, "v6"), host="::1").start()
    try:
        n = make_nginx(redis_port=r.port, redis_addr="[::1]:%d" % r.port)
        assert n.status()["redis"]["address"] == "[::1]:%d" % r.port
        roundtrip(n, "v6")
        assert r.client().hexists("loom:{t:v6}", "value")
    finally:
        r.kill()


def test_every_address_of_a_name_is_tried(workdir, make_nginx):
    # a name with two addresses where Redis listens on one only: the
    # links go on to the next address until one answers
    addrs = localhost_addresses()
    if len(addrs) < 2:
        pytest.skip("\"localhost\" has fewer than two addresses here")
    for addr in addrs:
        r = Redis(os.path.join(workdir, "only-" + addr), host=addr).start()
        try:
            n = make_nginx(name="only-" + addr, redis_port=r.port,
                           redis_addr="localhost:%d" % r.port)
            roundtrip(n, "only")
            n.stop()
        finally:
            r.kill()


def test_user_without_password_is_refused(workdir, redis_server):
    n = Nginx(os.path.join(workdir, "nopw"), redis_server.port,
              http="loom_redis_user loom;")
    r = n.cmd("-t")
    assert r.returncode != 0
    assert '"loom_redis_user" needs "loom_redis_password"' in r.stderr


def test_scripts_flushed_on_the_server(redis_server, nginx):
    # SCRIPT FLUSH (or a Redis that lost its script cache): the publish
    # in flight is sent again with the script's text, not failed
    c = nginx.client()
    register(c, "flush", {"v": None})
    subscribe(c, "flush")
    redis_server.client().script_flush()
    for i in range(3):
        c.send_json({"id": str(i), "action": "publish", "topic": "flush",
                     "data": {"v": i}, "requireAck": True})
    for i in range(3):
        assert c.recv_json()["data"] == {"v": i}
        r = c.recv_json()
        assert (r["id"], r["code"]) == (str(i), 200)
    assert "scripts missing on the server" in nginx.log()
    assert redis_server.client().hget("loom:{t:flush}", "value") == \
        b'{"v": 2}'
    c.close()
