"""Per-request permissions: every action with the permission it needs
granted and not granted (403 "forbidden: <topic>" in the request's own
envelope), listTopics showing only the topics a credential may see,
{client} and {sub}, and the key file read anew by nginx -s reload."""

import os

from authtools import write_keyfile
from conftest import answer, wait_for
from test_auth import assert_unauthorized, refused
from wsclient import WSClient

ADMIN = {"publish": ["**"], "subscribe": ["**"], "admin": ["**"]}

# every action checked against a topic, and the list it needs
ACTIONS = [
    ("publish", "publish", {"a": 1}),
    ("sendWithoutSave", "publish", {"a": 1}),
    ("subscribe", "subscribe", None),
    ("get", "subscribe", None),
    ("getSchema", "subscribe", None),
    ("registerTopic", "admin", {"a": None}),
    ("updateSchema", "admin", {"a": None}),
    ("unregisterTopic", "admin", None),
]


def keyed(n, key, headers=None):
    h = {"Authorization": key}
    h.update(headers or {})
    return WSClient("127.0.0.1", n.port, headers=h)


def request(c, action, topic, data):
    m = {"id": "x", "action": action, "topic": topic, "requireAck": True}
    if data is not None:
        m["data"] = data
    return c.request(m)


def test_every_action_and_permission(make_nginx, workdir):
    entries = [("admin", "k-all", ADMIN)]
    for lst in ("publish", "subscribe", "admin"):
        entries.append(("only-" + lst, "k-" + lst, {lst: ["t/*"]}))
    kf = write_keyfile(os.path.join(workdir, "keys.json"), entries)
    n = make_nginx(location="loom_auth_file %s;" % kf)
    adm = keyed(n, "k-all")
    for lst in ("publish", "subscribe", "admin"):
        c = keyed(n, "k-" + lst)
        for action, needs, data in ACTIONS:
            topic = "t/" + lst + "-" + action
            r = request(adm, "registerTopic", topic, {"a": None})
            assert r["code"] == 200, r
            if action == "registerTopic":
                r = request(adm, "unregisterTopic", topic, None)
                assert r["code"] == 200, r
            r = request(c, action, topic, data)
            if needs == lst:
                assert (r["id"], r["action"], r["code"]) == (
                    "x", action, 200), (lst, r)
            else:
                assert r == answer("x", action, 403,
                                   "forbidden: " + topic), (lst, r)
            # nothing outside the pattern, whatever the list
            r = request(c, action, "other/" + action, data)
            assert r == answer("x", action, 403,
                               "forbidden: other/" + action), (lst, r)
        # needing nothing
        r = c.request({"id": "u", "action": "unsubscribe", "topic": "zz",
                       "requireAck": True})
        assert r["code"] != 403, r
        r = c.request({"id": "u", "action": "unsubscribeAll",
                       "requireAck": True})
        assert r["code"] != 403, r
        c.close()
    adm.close()


def test_denied_keeps_envelope_and_connection(make_nginx, workdir):
    kf = write_keyfile(os.path.join(workdir, "keys.json"),
                       [("r", "k-r", {"subscribe": ["pub/**"]}),
                        ("admin", "k-all", ADMIN)])
    n = make_nginx(location="loom_auth_file %s;" % kf)
    adm = keyed(n, "k-all")
    assert request(adm, "registerTopic", "pub/a", {"a": None})["code"] == 200
    assert request(adm, "subscribe", "pub/a", None)["code"] == 200
    c = keyed(n, "k-r")
    c.send_json({"id": "p1", "action": "publish", "topic": "pub/a",
                 "data": {"a": 1}})
    r = c.recv_json()
    assert r == answer("p1", "publish", 403, "forbidden: pub/a")
    r = request(c, "unregisterTopic", "pub/a", None)
    assert r == answer("x", "unregisterTopic", 403, "forbidden: pub/a")
    # neither took effect: no delivery, the topic and its value are there
    adm.expect_silence()
    r = c.request({"id": "g", "action": "get", "topic": "pub/a"})
    assert r == answer("g", "get", data=None)
    c.close()
    adm.close()


def test_list_topics_shows_only_visible(make_nginx, workdir):
    kf = write_keyfile(os.path.join(workdir, "keys.json"), [
        ("admin", "k-admin", ADMIN),
        ("sub", "k-sub", {"subscribe": ["a/*"], "admin": ["b"],
                          "publish": ["c"]}),
        ("none", "k-none", {})])
    n = make_nginx(location="loom_auth_file %s;" % kf)
    adm = keyed(n, "k-admin")
    for t in ("a/1", "a/2", "b", "c", "d"):
        assert request(adm, "registerTopic", t, {"a": None})["code"] == 200
    names = lambda r: [e["name"] for e in (r.get("data") or [])]
    r = adm.request({"id": "l", "action": "listTopics"})
    assert names(r) == ["a/1", "a/2", "b", "c", "d"]
    c = keyed(n, "k-sub")
    r = c.request({"id": "l", "action": "listTopics"})
    assert names(r) == ["a/1", "a/2", "b", "c"]
    c.close()
    c = keyed(n, "k-none")
    r = c.request({"id": "l", "action": "listTopics"})
    assert r == answer("l", "listTopics", data=None)
    c.close()
    adm.close()


def test_placeholders(make_nginx, workdir):
    kf = write_keyfile(os.path.join(workdir, "keys.json"), [
        ("admin", "k-admin", ADMIN),
        ("sensor-7", "k-s7", {"publish": ["in/{client}", "s/{sub}"]})])
    n = make_nginx(location="loom_auth_file %s;" % kf)
    adm = keyed(n, "k-admin")
    for t in ("in/c1", "in/c2", "s/sensor-7", "s/sensor-8", "in/*"):
        assert request(adm, "registerTopic", t, {"a": None})["code"] == 200
    c = keyed(n, "k-s7", {"ClientId": "c1"})
    for t, ok in (("in/c1", True), ("in/c2", False),
                  ("s/sensor-7", True), ("s/sensor-8", False)):
        r = request(c, "publish", t, {"a": 1})
        assert r["code"] == (200 if ok else 403), (t, r)
    c.close()
    # a ClientId with a pattern character makes {client} match nothing
    c = keyed(n, "k-s7", {"ClientId": "*"})
    r = request(c, "publish", "in/*", {"a": 1})
    assert r == answer("x", "publish", 403, "forbidden: in/*")
    c.close()
    adm.close()


def test_key_file_reload(make_nginx, workdir):
    path = os.path.join(workdir, "keys.json")
    write_keyfile(path, [("one", "k-one", {"subscribe": ["x"]})])
    n = make_nginx(location="loom_auth_file %s;" % path,
                   allowed_log=r"loom_auth_file")
    c = keyed(n, "k-one")
    assert request(c, "subscribe", "x", None)["code"] != 403
    c.close()
    assert_unauthorized(refused(n, {"Authorization": "k-two"}))
    write_keyfile(path, [("two", "k-two", {"publish": ["x"]})])
    old = set(n.worker_pids())
    n.reload()
    # the old worker may take a connection until it has quit
    wait_for(lambda: not old & set(n.worker_pids()), what="old workers")
    assert_unauthorized(refused(n, {"Authorization": "k-one"}))
    c = keyed(n, "k-two")
    assert request(c, "subscribe", "x", None) == answer(
        "x", "subscribe", 403, "forbidden: x")
    c.close()
    # a broken file fails the reload, with where and why; the old one stays
    with open(path, "w") as f:
        f.write('{"keys": [{"name": "x", "sha256": 1}]}')
    r = n.cmd("-t")
    assert r.returncode != 0
    assert "loom_auth_file" in r.stderr and "keys[1]" in r.stderr, r.stderr
    with open(path, "w") as f:
        f.write('{"keys": [,]}')
    r = n.cmd("-t")
    assert "line 1, column" in r.stderr, r.stderr
    c = keyed(n, "k-two")
    c.close()


def test_inherited_and_overridden(make_nginx, workdir):
    outer = write_keyfile(os.path.join(workdir, "outer.json"),
                          [("o", "k-outer", ADMIN)])
    inner = write_keyfile(os.path.join(workdir, "inner.json"),
                          [("i", "k-inner", ADMIN)])
    n = make_nginx(http="loom_auth_file %s;" % outer)
    keyed(n, "k-outer").close()
    assert_unauthorized(refused(n, {"Authorization": "k-inner"}))
    assert_unauthorized(refused(n))
    m = make_nginx(http="loom_auth_file %s;" % outer,
                   location="loom_auth_file %s;" % inner)
    keyed(m, "k-inner").close()
    assert_unauthorized(refused(m, {"Authorization": "k-outer"}))
    # off drops the inherited file: open again, anything may be done
    o = make_nginx(http="loom_auth_file %s;" % outer,
                   location="loom_auth_file off;")
    c = WSClient("127.0.0.1", o.port)
    assert request(c, "registerTopic", "t", {"a": None})["code"] == 200
    c.close()
