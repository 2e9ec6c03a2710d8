"""JSON Schema topics on the wire (docs/schemas.md section 12).

registerTopic and updateSchema with "schemaType":"json-schema" and
"compatibility"; publishes checked on every worker and node against the
compiled schema, refused with "errors"; getSchema and the versions kept;
the compatibility modes and their 409 with "differences"; two updates
racing; key-set topics and their clients unchanged, byte for byte.
"""

import json
import os
import threading

import pytest

from conftest import answer, clients_on_workers, register, subscribe

LUA = os.path.join(os.path.dirname(__file__), "..", "..", "ngx_loom_module",
                   "lua")

MISMATCH = "schema doesn't match topics current schema"

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z]"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string",
                                            "maxLength": 3}},
    },
    "required": ["name"],
}


def jregister(c, topic, schema, rid="jr", **members):
    req = {"id": rid, "action": "registerTopic", "topic": topic,
           "data": schema, "schemaType": "json-schema", "requireAck": True}
    req.update(members)
    return c.request(req)


def update(c, topic, schema, rid="u", json_schema=True, **members):
    req = {"id": rid, "action": "updateSchema", "topic": topic,
           "data": schema, "requireAck": True}
    if json_schema:
        req["schemaType"] = "json-schema"
    req.update(members)
    return c.request(req)


def publish(c, topic, data, rid="p", action="publish"):
    return c.request({"id": rid, "action": action, "topic": topic,
                      "data": data, "requireAck": True})


def get_schema(c, topic, rid="g", **members):
    req = {"id": rid, "action": "getSchema", "topic": topic}
    req.update(members)
    return c.request(req)


def raw_request(c, obj):
    """The answer's text exactly as the server sent it."""
    c.send_text(json.dumps(obj, separators=(",", ":")))
    f = c.recv_message()
    return f.payload.decode("utf-8")


# registration and publishes

def test_publishes_checked_on_every_worker(make_nginx):
    n = make_nginx(workers=2)
    admin = n.client()
    assert jregister(admin, "people", PERSON) == answer(
        "jr", "registerTopic", data={})

    for pid, (c,) in clients_on_workers(n).items():
        for action in ("publish", "sendWithoutSave"):
            r = publish(c, "people", {"name": "Ann", "age": 3}, "ok",
                        action)
            assert r == answer("ok", action), (pid, r)

            r = publish(c, "people", {"name": "ann", "age": -1,
                                      "tags": ["abcd", 5]}, "bad", action)
            assert r == answer("bad", action, 400, MISMATCH, errors=[
                {"instancePath": "/name", "keyword": "pattern",
                 "message": "does not match the pattern"},
                {"instancePath": "/age", "keyword": "minimum",
                 "message": r["errors"][1]["message"]},
                {"instancePath": "/tags/0", "keyword": "maxLength",
                 "message": r["errors"][2]["message"]},
                {"instancePath": "/tags/1", "keyword": "type",
                 "message": "wrong type"},
            ]), (pid, r)
            assert "0" in r["errors"][1]["message"]

            # 1.0 is an integer; a missing required property is named
            assert publish(c, "people", {"name": "Bo", "age": 1.0},
                           "f", action)["code"] == 200
            r = publish(c, "people", {"age": 1}, "m", action)
            assert r["errors"] == [{"instancePath": "",
                                    "keyword": "required",
                                    "message": "property \"name\" missing"}]

    # nothing refused was stored
    r = admin.request({"id": "v", "action": "get", "topic": "people"})
    assert r["data"] == {"name": "Bo", "age": 1.0}


def test_the_errors_are_capped(make_nginx):
    n = make_nginx(http="loom_schema_max_errors 2;")
    c = n.client()
    assert jregister(c, "t", {"additionalProperties": {"type": "string"}}
                     )["code"] == 200
    r = publish(c, "t", {"a": 1, "b": 2, "c": 3, "d": "x"})
    assert r["code"] == 400 and r["message"] == MISMATCH
    assert [e["instancePath"] for e in r["errors"]] == ["/a", "/b"]
    assert list(r) == ["id", "action", "code", "message", "errors", "type"]


@pytest.mark.parametrize("schema,message", [
    ({"type": "strong"},
     'invalid schema: unknown type "strong" at the root'),
    ({"properties": {"a": {"foo": 1}}},
     'invalid schema: unsupported keyword "foo" at /properties/a'),
    ({"$ref": "http://example.com/s.json"},
     'invalid schema: remote $ref "http://example.com/s.json" is not '
     'supported at the root'),
    ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, None),
    ({"pattern": "("}, None),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
      "$ref": "#/$defs/a"}, None),
])
def test_bad_schemas_are_refused(nginx, schema, message):
    c = nginx.client()
    for action in ("registerTopic", "updateSchema"):
        if action == "updateSchema":
            register(c, "t", {"a": None})
        r = c.request({"id": "b", "action": action, "topic": "t",
                       "data": schema, "schemaType": "json-schema",
                       "requireAck": True})
        assert r["code"] == 400 and r["message"].startswith(
            "invalid schema: "), r
        if message:
            assert r["message"] == message, r
        assert set(r) == {"id", "action", "code", "message", "type"}

    # nothing changed
    r = get_schema(c, "t")
    assert r["data"] == {"a": None} and r["version"] == 0, r


def test_the_limits_of_a_schema(make_nginx):
    n = make_nginx(http="loom_schema_max_size 200;\n"
                        "loom_schema_max_depth 3;\n"
                        "loom_schema_max_subschemas 6;")
    c = n.client()

    big = {"description": "x" * 200}
    r = jregister(c, "t", big)
    assert r == answer("jr", "registerTopic", 400,
                       "invalid schema: the schema is larger than 200 "
                       "bytes")

    deep = {"not": {"not": {"not": {"not": {}}}}}
    r = jregister(c, "t", deep)
    assert r["code"] == 400 and "deeper than 3" in r["message"], r
    assert jregister(c, "t", {"not": {"not": {}}})["code"] == 200

    many = {"properties": {k: {} for k in "abcdefgh"}}
    r = jregister(c, "u", many)
    assert r["code"] == 400 and "subschemas" in r["message"], r

    # key-set schemas have none of these limits
    register(c, "k", {"description": "x" * 300})


def test_request_members_checked(nginx):
    c = nginx.client()
    r = jregister(c, "t", {}, schemaType="json")
    assert r == answer("jr", "registerTopic", 400,
                       'invalid "schemaType": it must be "keys" or '
                       '"json-schema"')
    r = jregister(c, "t", {}, compatibility="sideways")
    assert r["code"] == 400 and r["message"].startswith(
        'invalid "compatibility": it must be "none", "backward"'), r
    r = jregister(c, "t", {}, compatibility=1)
    assert r["code"] == 400, r
    r = get_schema(c, "t", version=-1)
    assert r == answer("g", "getSchema", 400, 'invalid "version": it must '
                       'be an integer of 0 or more')
    assert get_schema(c, "t", version="1")["code"] == 400
    assert get_schema(c, "t", version=1.5)["code"] == 400

    # "keys" is the key-set rule, as without the member
    r = c.request({"id": "k", "action": "registerTopic", "topic": "k",
                   "data": {"a": None}, "schemaType": "keys",
                   "requireAck": True})
    assert r["code"] == 200
    assert publish(c, "k", {"a": [1]})["code"] == 200
    assert publish(c, "k", {"b": 1})["code"] == 400


def test_register_again(nginx):
    c = nginx.client()
    assert jregister(c, "t", PERSON)["code"] == 200
    assert jregister(c, "t", json.loads(json.dumps(PERSON)))["code"] == 200
    exists = ("cannot register topic, topic already exists with different "
              "schema. Try updating schema")
    assert jregister(c, "t", {"type": "object"}) == answer(
        "jr", "registerTopic", 500, exists)
    # the same document as a key-set schema is another schema
    r = c.request({"id": "k", "action": "registerTopic", "topic": "t",
                   "data": PERSON, "requireAck": True})
    assert r == answer("k", "registerTopic", 500, exists)


def test_format_assertion(make_nginx, redis_server):
    schema = {"properties": {"m": {"format": "email"}}}
    off = make_nginx()
    c = off.client()
    assert jregister(c, "a", schema)["code"] == 200
    assert publish(c, "a", {"m": "nope"})["code"] == 200

    on = make_nginx(http="loom_schema_format on;")
    c = on.client()
    assert jregister(c, "b", schema)["code"] == 200
    r = publish(c, "b", {"m": "nope"})
    assert r["code"] == 400 and r["errors"][0]["keyword"] == "format", r
    assert publish(c, "b", {"m": "a@b.example"})["code"] == 200
    # an unknown format is refused where formats are assertions
    r = jregister(c, "c", {"format": "colour"})
    assert r["code"] == 400 and "colour" in r["message"], r

    # the topic keeps what it was registered with, on every node
    c = off.client()
    assert publish(c, "b", {"m": "nope"})["code"] == 400
    assert publish(c, "a", {"m": "nope"})["code"] == 200


# getSchema and versions

def test_get_schema_and_versions(make_nginx):
    n = make_nginx(http="loom_schema_versions 3;")
    c = n.client()

    r = get_schema(c, "t")
    assert r == answer("g", "getSchema", 404, "topic t doesn't exist")

    register(c, "t", {"a": None})
    r = get_schema(c, "t")
    assert r == answer("g", "getSchema", data={"a": None}, version=0,
                       versions=[0], schemaType="keys",
                       compatibility="none")

    schemas = [{"a": None}]
    for i in range(1, 5):
        s = {"type": "object", "maxProperties": i}
        schemas.append(s)
        assert update(c, "t", s, "u%d" % i, compatibility="backward"
                      if i == 4 else None)["code"] == 200

    r = get_schema(c, "t")
    assert r == answer("g", "getSchema", data=schemas[4], version=4,
                       versions=[2, 3, 4], schemaType="json-schema",
                       compatibility="backward")
    assert list(r) == ["id", "action", "code", "data", "version",
                       "versions", "schemaType", "compatibility", "type"]

    for v in (2, 3, 4):
        r = get_schema(c, "t", version=v)
        assert r["data"] == schemas[v] and r["version"] == v, r
        assert r["versions"] == [2, 3, 4]

    for v in (0, 1, 5, 70):
        r = get_schema(c, "t", version=v)
        assert r == answer("g", "getSchema", 404, "schema version %d of "
                           "topic t is not kept" % v)

    # a version kept is answered as it was sent, key-set kind included
    update(c, "t", {"b": {"c": None}}, "k", json_schema=False,
           compatibility="none")
    r = get_schema(c, "t", version=4)
    assert r["schemaType"] == "json-schema" and r["data"] == schemas[4]
    r = get_schema(c, "t")
    assert r["schemaType"] == "keys" and r["version"] == 5
    assert r["compatibility"] == "none" and r["versions"] == [3, 4, 5]

    # a topic registered again starts over
    c.request({"id": "d", "action": "unregisterTopic", "topic": "t",
               "requireAck": True})
    register(c, "t", {"z": None})
    r = get_schema(c, "t")
    assert r["version"] == 0 and r["versions"] == [0]
    assert get_schema(c, "t", version=1)["code"] == 404


def test_get_schema_follows_an_update_on_the_same_connection(nginx):
    c = nginx.client()
    assert jregister(c, "t", {"type": "object"})["code"] == 200
    # sent at once: the getSchema must see the update before it
    c.send_json({"id": "u", "action": "updateSchema", "topic": "t",
                 "data": {"type": "object", "minProperties": 1},
                 "schemaType": "json-schema", "requireAck": True})
    c.send_json({"id": "g", "action": "getSchema", "topic": "t"})
    c.send_json({"id": "p", "action": "publish", "topic": "t", "data": {},
                 "requireAck": True})
    assert c.recv_json() == answer("u", "updateSchema")
    r = c.recv_json()
    assert r["id"] == "g" and r["version"] == 1, r
    r = c.recv_json()
    assert r["id"] == "p" and r["code"] == 400, r


# compatibility

COMPAT = [
    # mode, old, new, allowed
    ("backward", {"properties": {"a": {"type": "string"}}},
     {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}},
     True),
    ("backward", {"properties": {"a": {}}},
     {"properties": {"a": {}}, "required": ["a"]}, False),
    ("forward", {"properties": {"a": {}}},
     {"properties": {"a": {}}, "required": ["a"]}, True),
    ("backward", {"properties": {"s": {"type": "string"}}},
     {"properties": {"s": {"type": ["string", "null"]}}}, True),
    ("forward", {"properties": {"s": {"type": "string"}}},
     {"properties": {"s": {"type": ["string", "null"]}}}, False),
    ("full", {"properties": {"n": {"maxLength": 4}}},
     {"properties": {"n": {"maxLength": 4}, "m": {}}}, True),
    ("full", {"properties": {"n": {"enum": [1, 2]}}},
     {"properties": {"n": {"enum": [1, 2, 3]}}}, False),
    ("none", {"type": "string"}, {"type": "integer"}, True),
]


@pytest.mark.parametrize("mode,old,new,allowed", COMPAT)
def test_compatibility_modes(nginx, mode, old, new, allowed):
    c = nginx.client()
    assert jregister(c, "t", dict(old, type="object")
                     if "type" not in old else old,
                     compatibility=mode)["code"] == 200
    if "type" not in old:
        new = dict(new, type="object")
    r = update(c, "t", new)
    if allowed:
        assert r == answer("u", "updateSchema"), r
        assert get_schema(c, "t")["version"] == 1
        return

    assert r["code"] == 409, r
    assert r["message"] == "schema change is not %s compatible" % mode
    assert list(r) == ["id", "action", "code", "message", "differences",
                       "type"]
    assert r["differences"] and all(
        set(d) == {"path", "reason"} for d in r["differences"])
    if mode == "full":
        assert all(d["reason"].startswith(("backward: ", "forward: "))
                   for d in r["differences"])
    # nothing changed
    g = get_schema(c, "t")
    assert g["version"] == 0 and g["compatibility"] == mode


def test_a_refusal_names_the_place(nginx):
    c = nginx.client()
    jregister(c, "t", {"properties": {"a": {"type": "string"}}},
              compatibility="backward")
    r = update(c, "t", {"properties": {"a": {"type": "integer"}}})
    assert r["code"] == 409
    assert [d["path"] for d in r["differences"]] == ["/properties/a"], r


def test_the_differences_are_capped(make_nginx):
    n = make_nginx(http="loom_schema_max_errors 1;")
    c = n.client()
    jregister(c, "t", {"properties": {"a": {"type": "string"},
                                      "b": {"type": "string"}}},
              compatibility="backward")
    r = update(c, "t", {"properties": {"a": {"type": "integer"},
                                       "b": {"type": "integer"}}})
    assert r["code"] == 409 and len(r["differences"]) == 1, r

    # both are found without the cap
    c = make_nginx().client()
    r = update(c, "t", {"properties": {"a": {"type": "integer"},
                                       "b": {"type": "integer"}}})
    assert [d["path"] for d in r["differences"]] == ["/properties/a",
                                                     "/properties/b"], r


def test_transitive_modes_check_every_kept_version(make_nginx):
    n = make_nginx(http="loom_schema_versions 3;")
    c = n.client()
    v0 = {"properties": {"a": {"maxLength": 10}}}
    v1 = {"properties": {"a": {"maxLength": 20}}}
    v2 = {"properties": {"a": {"maxLength": 15}}}
    # forward: old schemas accept every message of the new one
    jregister(c, "t", v0, compatibility="backward")
    assert update(c, "t", v1)["code"] == 200

    # 15 narrows v1 (backward refuses), transitive or not
    r = update(c, "t", v2)
    assert r["code"] == 409, r
    assert update(c, "t", v2, compatibility="forward")["code"] == 200

    # v3 = 12 is forward compatible with v2 (15) but not with v0 (10)
    v3 = {"properties": {"a": {"maxLength": 12}}}
    r = update(c, "t", v3, compatibility="forward_transitive")
    assert r["code"] == 409, r
    assert r["message"] == ("schema change is not forward_transitive "
                            "compatible")
    assert all(d["reason"].startswith("version 0: ")
               for d in r["differences"]), r
    assert update(c, "t", v3, compatibility="forward")["code"] == 200

    # the mode given stays the topic's
    g = get_schema(c, "t")
    assert g["compatibility"] == "forward" and g["versions"] == [1, 2, 3]
    # v0 is no longer kept: 11 is forward_transitive over 1..3
    v4 = {"properties": {"a": {"maxLength": 11}}}
    assert update(c, "t", v4, compatibility="forward_transitive"
                  )["code"] == 200


@pytest.mark.parametrize("mode,older,newer", [
    # backward: the new schema accepts every message of the old ones
    ("backward", {"enum": [1, 2]}, {"enum": [3]}),
    # full: both ways
    ("full", {"type": "string"}, {"type": "integer"}),
])
def test_transitive_against_an_older_version(nginx, mode, older, newer):
    c = nginx.client()
    jregister(c, "t", {"properties": {"a": older}})
    assert update(c, "t", {"properties": {"a": newer}})["code"] == 200

    # compatible with the current version, not with version 0
    if mode == "backward":
        step = {"enum": [3, 4]}
        fine = {"enum": [1, 2, 3, 4]}
    else:
        step = dict(newer, title="same")
        fine = None
    r = update(c, "t", {"properties": {"a": step}},
               compatibility=mode + "_transitive")
    assert r["code"] == 409, r
    assert r["message"] == ("schema change is not %s_transitive compatible"
                            % mode)
    assert r["differences"] and all(
        d["reason"].startswith("version 0: ") for d in r["differences"]), r
    assert get_schema(c, "t")["version"] == 1

    # the same change under the plain mode looks at version 1 only
    assert update(c, "t", {"properties": {"a": step}},
                  compatibility=mode)["code"] == 200
    if fine:
        assert update(c, "t", {"properties": {"a": fine}},
                      compatibility=mode + "_transitive")["code"] == 200


def test_without_the_member_the_mode_is_none(nginx):
    c = nginx.client()
    assert jregister(c, "t", {"type": "string"})["code"] == 200
    assert get_schema(c, "t")["compatibility"] == "none"
    assert update(c, "t", {"type": "integer"}) == answer("u", "updateSchema")
    # a mode set once stays until a request changes it
    assert update(c, "t", {"type": "integer"}, "m",
                  compatibility="full")["code"] == 200
    assert update(c, "t", {"type": "string"})["code"] == 409
    assert update(c, "t", {"type": "string"}, "n",
                  compatibility="none")["code"] == 200
    g = get_schema(c, "t")
    assert g["compatibility"] == "none" and g["version"] == 3


def test_defaults_of_the_mode(make_nginx, redis_server):
    n = make_nginx(http="loom_schema_compatibility backward;")
    c = n.client()

    # key-set topics and JSON Schema topics given a mode are not affected
    register(c, "k", {"a": None})
    assert update(c, "k", {"b": None}, json_schema=False)["code"] == 200
    assert jregister(c, "n", {"type": "object"},
                     compatibility="none")["code"] == 200
    assert update(c, "n", {"type": "string"})["code"] == 200

    # a JSON Schema topic takes the default at its registration
    assert jregister(c, "j", {"type": ["object", "null"]})["code"] == 200
    assert get_schema(c, "j")["compatibility"] == "backward"
    r = update(c, "j", {"type": "object"})
    assert r["code"] == 409 and "backward" in r["message"], r

    # the key-set rules for key-set topics given a mode
    register(c, "ks", {"a": None, "b": {"c": None}})
    r = update(c, "ks", {"a": None, "b": {"c": None}, "x": None},
               json_schema=False, compatibility="backward")
    assert r["code"] == 409, r
    assert update(c, "ks", {"b": {"c": 1}, "a": 5}, json_schema=False,
                  compatibility="backward")["code"] == 200
    # the kind cannot change under a mode
    r = update(c, "ks", {"type": "object"})
    assert r["code"] == 409 and "type changes" in r["differences"][0][
        "reason"], r


def test_two_updates_racing(make_nginx, redis_server):
    """Each is compatible with the version before, not with the other."""
    n1 = make_nginx()
    n2 = make_nginx()
    a, b = n1.client(), n2.client()
    jregister(a, "t", {"enum": [1]}, compatibility="backward")
    rc = redis_server.client()

    for i in range(3):
        if i:
            update(a, "t", {"enum": [1]}, "reset", compatibility="none")
            update(a, "t", {"enum": [1]}, "mode", compatibility="backward")
        # both read the versions before either writes
        rc.execute_command("CLIENT", "PAUSE", "300", "ALL")
        results = {}

        def send(c, key, schema):
            results[key] = update(c, "t", schema, key)

        ts = [threading.Thread(target=send, args=(a, "a", {"enum": [1, 2]})),
              threading.Thread(target=send, args=(b, "b", {"enum": [1, 3]}))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

        codes = sorted(r["code"] for r in results.values())
        assert codes == [200, 409], results
        won = [k for k, r in results.items() if r["code"] == 200][0]
        g = get_schema(a, "t")
        assert g["data"] == {"enum": [1, 2] if won == "a" else [1, 3]}


def test_updates_racing_without_a_mode_all_succeed(make_nginx, redis_server):
    """Without a mode nothing is checked, so nothing is compared: updates
    racing from old clients all succeed, as before modes existed."""
    n1 = make_nginx()
    n2 = make_nginx()
    a, b = n1.client(), n2.client()
    a.request({"id": "r", "action": "registerTopic", "topic": "k",
               "data": {"x": None}, "requireAck": True})
    rc = redis_server.client()
    results = {}

    def send(c, key, schema):
        results[key] = update(c, "k", schema, key, json_schema=False)

    def scripts_run():
        return rc.info("commandstats").get("cmdstat_evalsha",
                                           {}).get("calls", 0)

    for i in range(3):
        before = scripts_run()
        # both are sent while Redis is paused, so neither has written
        rc.execute_command("CLIENT", "PAUSE", "300", "ALL")
        ts = [threading.Thread(target=send, args=(a, "a", {"a": None})),
              threading.Thread(target=send, args=(b, "b", {"b": None}))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert [results[k]["code"] for k in "ab"] == [200, 200], results
        # each read the versions once and wrote once: no update was sent
        # back to be checked again
        assert scripts_run() - before == 4
    assert rc.hget("loom:{t:k}", "sv") == b"6"


def test_the_update_script_compares_and_sets(redis_server):
    r = redis_server.client()
    with open(os.path.join(LUA, "register.lua")) as f:
        reg = f.read()
    with open(os.path.join(LUA, "update.lua")) as f:
        upd = f.read()
    keys = ["loom:{t:x}", "loom:topics", "loom:{t:x}:h"]
    assert r.eval(reg, 3, *keys, "x", '{"a":null}', "r1", "", "", "",
                  "json-schema", "backward") == [1]
    base = ["x", '{"b":null}', "loom:ctl", "", "", ""]
    assert r.eval(upd, 3, *keys, *base, "1", "json-schema", "backward",
                  "10") == -2
    assert r.hget(keys[0], "sv") == b"0"
    assert r.eval(upd, 3, *keys, *base, "0", "json-schema", "backward",
                  "10") == 1
    assert r.hget(keys[0], "s:0") == b'{"a":null}'
    assert r.hget(keys[0], "k:0") == b"json-schema"
    assert json.loads(r.hget("loom:topics", "x")) == {
        "version": 1, "schema": {"b": None}, "schemaType": "json-schema",
        "compatibility": "backward"}


# key-set topics and their clients, byte for byte

def test_key_set_sessions_are_unchanged(nginx):
    c = nginx.client()
    reg = {"id": "r", "action": "registerTopic", "topic": "chat",
           "data": {"Sender": None, "Message": None}, "requireAck": True}
    assert raw_request(c, reg) == (
        '{"id":"r","action":"registerTopic","code":200,"data":{},'
        '"type":"response"}\n')
    pub = {"id": "p", "action": "publish", "topic": "chat",
           "data": {"Sender": "a"}, "requireAck": True}
    assert raw_request(c, pub) == (
        '{"id":"p","action":"publish","code":400,"message":"schema '
        'doesn\'t match topics current schema","type":"response"}\n')
    upd = {"id": "u", "action": "updateSchema", "topic": "chat",
           "data": {"Sender": None}, "requireAck": True}
    assert raw_request(c, upd) == (
        '{"id":"u","action":"updateSchema","code":200,'
        '"type":"response"}\n')
    pub["data"] = {"Sender": "a", "Message": "m"}
    assert raw_request(c, pub) == (
        '{"id":"p","action":"publish","code":400,"message":"schema '
        'doesn\'t match topics current schema","type":"response"}\n')
    upd["topic"] = "nope"
    assert raw_request(c, upd) == (
        '{"id":"u","action":"updateSchema","code":500,"message":"cannot '
        'update schema for topic nope. Topic doesn\'t exist",'
        '"type":"response"}\n')
    # a delivery and a get, as the original's
    sub = nginx.client(headers={"ClientId": "bob"})
    assert raw_request(sub, {"id": "s", "action": "subscribe",
                             "topic": "chat", "requireAck": True}) == (
        '{"id":"s","action":"subscribe","code":200,"type":"response"}\n')
    c2 = nginx.client(headers={"ClientId": "ann"})
    assert raw_request(c2, {"id": "p2", "action": "publish", "topic": "chat",
                            "data": {"Sender": "ann"},
                            "requireAck": True}) == (
        '{"id":"p2","action":"publish","code":200,"type":"response"}\n')
    assert sub.recv_message().payload.decode() == (
        '{"id":"p2","action":"publish","topic":"chat","data":'
        '{"Sender":"ann"},"senderId":"ann"}\n')
    assert raw_request(c, {"id": "g", "action": "get", "topic": "chat"}) == (
        '{"id":"g","action":"get","code":200,"data":{"Sender":"ann"},'
        '"type":"response"}\n')
    reg["data"] = {"Sender": None}
    assert raw_request(c, reg) == (
        '{"id":"r","action":"registerTopic","code":200,"data":{},'
        '"type":"response"}\n')
    lst = {"id": "l", "action": "listTopics"}
    assert raw_request(c, lst) == (
        '{"id":"l","action":"listTopics","code":200,"data":[{"name":'
        '"chat","schema":{"version":1,"schema":{"Sender":null}}}],'
        '"type":"response"}\n')


def test_list_topics_names_the_kind(nginx):
    c = nginx.client()
    jregister(c, "j", {"type": "object"}, compatibility="full")
    register(c, "k", {"a": None})
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["data"] == [
        {"name": "j", "schema": {"version": 0, "schema": {"type": "object"},
                                 "schemaType": "json-schema",
                                 "compatibility": "full"}},
        {"name": "k", "schema": {"version": 0, "schema": {"a": None}}}]


# the caches of other workers and nodes

def test_an_update_reaches_every_cache(make_nginx):
    n1 = make_nginx(workers=2)
    n2 = make_nginx(workers=2)
    admin = n1.client()
    jregister(admin, "t", {"properties": {"a": {"type": "string"}}})
    clients = [c for n in (n1, n2)
               for (c,) in clients_on_workers(n).values()]
    sub = n2.client()
    subscribe(sub, "t")

    # every worker has the schema cached
    for i, c in enumerate(clients):
        assert publish(c, "t", {"a": "x"}, "p%d" % i)["code"] == 200
        assert sub.recv_json()["data"] == {"a": "x"}

    assert update(admin, "t", {"properties": {"a": {"type": "integer"}}}
                  )["code"] == 200

    for i, c in enumerate(clients):
        r = publish(c, "t", {"a": "x"}, "q%d" % i)
        assert r["code"] == 400 and r["errors"] == [
            {"instancePath": "/a", "keyword": "type",
             "message": "wrong type"}], r
        assert publish(c, "t", {"a": 7}, "r%d" % i)["code"] == 200
        assert sub.recv_json()["data"] == {"a": 7}

    # and back to a key-set schema
    assert update(admin, "t", {"b": None}, json_schema=False)["code"] == 200
    for i, c in enumerate(clients):
        r = publish(c, "t", {"a": 7}, "s%d" % i)
        assert r == answer("s%d" % i, "publish", 400, MISMATCH), r
        assert publish(c, "t", {"b": [1]}, "t%d" % i)["code"] == 200
        assert sub.recv_json()["data"] == {"b": [1]}
    sub.expect_silence(0.3)
