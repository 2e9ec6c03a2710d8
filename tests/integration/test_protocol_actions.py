"""Every action of the protocol, every success shape and every error string.

Covers the response and delivery envelopes (byte for byte), undecodable
frames and their Go error texts, envelope decoding (case-insensitive keys,
last duplicate wins, null members), the requireAck rules, the validation
order of each action, the topic and data checks, each action's success and
error answers, the schema rule of seed-protocol section 7.3, ClientId and
senderId, and the ordering of answers and effects on one connection.
"""

import json
import re

import pytest

from conftest import answer, register, subscribe, wait_for
from wsclient import HandshakeError, encode_frame

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                  r"[0-9a-f]{12}$")





def raw(c, timeout=None):
    """The next data message as text, checked to be one text frame."""
    f = c.recv_message(timeout)
    assert f.opcode == 1, f
    return f.payload.decode("utf-8")


def sync(c, rid="sync"):
    """The next answer is the one to this listTopics: nothing came before.

    Answers come in request order, so an answer to anything sent earlier
    would arrive first.
    """
    c.send_json({"id": rid, "action": "listTopics"})
    r = c.recv_json()
    assert r["id"] == rid and r["action"] == "listTopics", r
    return r


def publish(c, topic, data, rid="p", ack=True, action="publish"):
    c.send_json({"id": rid, "action": action, "topic": topic, "data": data,
                 "requireAck": ack})


def get(c, topic, rid="g"):
    return c.request({"id": rid, "action": "get", "topic": topic})


# -- envelopes -------------------------------------------------------------


def test_response_envelope_bytes(nginx):
    c = nginx.client()
    c.send_text('{"id":"r1","action":"registerTopic","topic":"t",'
                '"data":{"a":null},"requireAck":true}')
    assert raw(c) == ('{"id":"r1","action":"registerTopic","code":200,'
                      '"data":{},"type":"response"}\n')
    c.send_text('{"id":"r2","action":"subscribe","topic":"nope"}')
    assert raw(c) == ('{"id":"r2","action":"subscribe","code":500,'
                      '"message":"topic doesn\'t exist for nope",'
                      '"type":"response"}\n')
    c.send_text('{"id":"r3","action":"get","topic":"t"}')
    assert raw(c) == ('{"id":"r3","action":"get","code":200,"data":null,'
                      '"type":"response"}\n')
    c.send_text('{"id":"r4","action":"subscribe","topic":"t",'
                '"requireAck":true}')
    assert raw(c) == ('{"id":"r4","action":"subscribe","code":200,'
                      '"type":"response"}\n')
    c.close()


def test_delivery_keeps_data_bytes_id_and_topic_as_sent(nginx):
    a = nginx.client(headers={"ClientId": "alice"})
    b = nginx.client()
    register(a, "t\u00e9", {"a": None, "b": None, "c": {}})
    subscribe(b, "t\u00e9")
    data = '{"b" : [1, 2.50, 1e2, -0.0], "a":"\\u00e9\\n<&>" , "c":{ }}'
    a.send_text('{"id":"p\\"1","action":"publish","topic":"t\\u00e9",'
                '"data": ' + data + ' ,"requireAck":true}')
    expect = ('{"id":"p\\"1","action":"publish","topic":"t\\u00e9","data":'
              + data + ',"senderId":"alice"}\n')
    assert raw(b) == expect
    assert raw(a) == ('{"id":"p\\"1","action":"publish","code":200,'
                      '"type":"response"}\n')
    # get returns the very same bytes
    a.send_text('{"id":"g","action":"get","topic":"t\u00e9"}')
    assert raw(a) == ('{"id":"g","action":"get","code":200,"data":' + data
                      + ',"type":"response"}\n')
    a.close()
    b.close()


def test_sender_id_is_client_id_or_a_server_uuid(nginx):
    a = nginx.client(headers={"ClientId": "caf\u00e9 \"1\""})
    b = nginx.client()
    register(a, "t", {"n": None})
    subscribe(a, "t")
    subscribe(b, "t")
    publish(a, "t", {"n": 1}, ack=False)
    d = a.recv_json()
    assert d["senderId"] == "caf\u00e9 \"1\""
    assert b.recv_json() == d
    publish(b, "t", {"n": 2}, rid="q", ack=False)
    d = b.recv_json()
    assert UUID.match(d["senderId"]), d
    assert a.recv_json() == d
    # the same id, every time, and the one unsubscribe errors name
    publish(b, "t", {"n": 3}, rid="q2", ack=False)
    assert b.recv_json()["senderId"] == d["senderId"]
    r = b.request({"id": "u", "action": "unsubscribe", "topic": "nope"})
    assert r == answer("u", "unsubscribe", 500, "cannot unsubscribe client "
                       "from topic. topic doesn't exits. topic: nope, "
                       "client: " + d["senderId"])
    c = nginx.client()
    subscribe(c, "t")
    publish(c, "t", {"n": 4}, rid="x", ack=False)
    other = c.recv_json()["senderId"]
    assert UUID.match(other) and other != d["senderId"]
    for x in (a, b, c):
        x.close()


# -- undecodable frames ----------------------------------------------------


BAD_FRAMES = [
    ("hello", "invalid character 'h' looking for beginning of value"),
    ("", "unexpected end of JSON input"),
    ("   ", "unexpected end of JSON input"),
    ('{"id":"1"', "unexpected end of JSON input"),
    ('{"id":"1",', "unexpected end of JSON input"),
    ('{"id":5,"action":"listTopics"}',
     "json: cannot unmarshal number into Go struct field "
     "WebSocketMessage.id of type string"),
    ('{"id":"a","action":["listTopics"]}',
     "json: cannot unmarshal array into Go struct field "
     "WebSocketMessage.action of type string"),
    ('{"action":"listTopics","topic":{}}',
     "json: cannot unmarshal object into Go struct field "
     "WebSocketMessage.topic of type string"),
    ('{"action":"listTopics","requireAck":"true"}',
     "json: cannot unmarshal string into Go struct field "
     "WebSocketMessage.requireAck of type bool"),
    ('{"action":"listTopics","senderId":1}',
     "json: cannot unmarshal number into Go struct field "
     "WebSocketMessage.senderId of type string"),
    ("[1]", "json: cannot unmarshal array into Go value of type "
            "network.WebSocketMessage"),
    ('"x"', "json: cannot unmarshal string into Go value of type "
            "network.WebSocketMessage"),
    ("12", "json: cannot unmarshal number into Go value of type "
           "network.WebSocketMessage"),
    ("false", "json: cannot unmarshal bool into Go value of type "
              "network.WebSocketMessage"),
    ('{"action":"listTopics"} x',
     "invalid character 'x' after top-level value"),
    ('{"action":"listTopics"}{"action":"listTopics"}',
     "invalid character '{' after top-level value"),
    ('{"action":"listTopics",}',
     "invalid character '}' looking for beginning of object key string"),
    ('{"action" "listTopics"}',
     "invalid character '\"' after object key"),
    ('{"action":tru}', "invalid character '}' in literal true "
                       "(expecting 'e')"),
]


def test_undecodable_frames(nginx):
    c = nginx.client()
    for text, message in BAD_FRAMES:
        c.send_text(text)
        assert c.recv_json() == answer("UNKNOWN", "UNKNOWN", 400, message), \
            text
    # the same as binary frames
    for text, message in BAD_FRAMES[:3]:
        c.send_frame(2, text)
        assert c.recv_json() == answer("UNKNOWN", "UNKNOWN", 400, message)
    c.send_frame(2, '{"id":"bin","action":"listTopics"}')
    assert c.recv_json() == answer("bin", "listTopics", data=None)
    c.send_frame(2, b"\xff{}")
    assert c.recv_json() == answer("UNKNOWN", "UNKNOWN", 400,
                                   "message is not valid UTF-8")
    # one answer each: the next one is this
    sync(c)
    c.close()


def test_null_frame_and_unknown_actions(nginx):
    c = nginx.client()
    c.send_text("null")
    assert c.recv_json() == answer("", "", 400, "unknown action: ")
    c.send_text(" null ")
    assert c.recv_json() == answer("", "", 400, "unknown action: ")
    c.send_json({"id": "x"})
    assert c.recv_json() == answer("x", "", 400, "unknown action: ")
    c.send_json({"id": "x", "action": "publishMany", "topic": "t"})
    assert c.recv_json() == answer("x", "publishMany", 400,
                                   "unknown action: publishMany")
    # actions are case-sensitive, and echoed as sent
    c.send_text('{"id":"y","action":"LISTTOPICS"}')
    assert c.recv_json() == answer("y", "LISTTOPICS", 400,
                                   "unknown action: LISTTOPICS")
    c.send_text('{"id":"z","action":"b\\u00e4d"}')
    assert raw(c) == ('{"id":"z","action":"b\\u00e4d","code":400,'
                      '"message":"unknown action: b\u00e4d",'
                      '"type":"response"}\n')
    c.close()


def test_envelope_keys_duplicates_and_nulls(nginx):
    c = nginx.client()
    register(c, "t", {"a": None})
    publish(c, "t", {"a": 1})
    assert c.recv_json() == answer("p", "publish")
    # keys are case-insensitive
    c.send_text('{"ID":"k","AcTiOn":"get","TOPIC":"t"}')
    assert c.recv_json() == answer("k", "get", data={"a": 1})
    # the last duplicate wins
    c.send_text('{"id":"1","id":"2","action":"bogus","action":"get",'
                '"topic":"zz","topic":"t"}')
    assert c.recv_json() == answer("2", "get", data={"a": 1})
    # null leaves a member as it was
    c.send_text('{"id":"n","id":null,"action":"get","action":null,'
                '"topic":"t","topic":null}')
    assert c.recv_json() == answer("n", "get", data={"a": 1})
    c.send_text('{"id":null,"action":"get","topic":"t"}')
    assert c.recv_json() == answer("", "get", data={"a": 1})
    c.send_text('{"id":"a1","action":"unsubscribeAll","requireAck":true,'
                '"requireAck":null}')
    assert c.recv_json() == answer("a1", "unsubscribeAll")
    c.send_text('{"id":"a2","action":"unsubscribeAll","requireAck":true,'
                '"requireAck":false}')
    sync(c, "after-a2")
    # data: the last one wins too, and a null one is a null one
    c.send_text('{"id":"d","action":"publish","topic":"t","data":{"a":2},'
                '"data":null,"requireAck":true}')
    assert c.recv_json() == answer("d", "publish", 400,
                                   "data payload could not be parsed")
    c.send_text('{"id":"d2","action":"publish","topic":"t","data":null,'
                '"data":{"a":3},"requireAck":true}')
    assert c.recv_json() == answer("d2", "publish")
    # unknown members are ignored, senderId from the client is ignored
    c.send_text('{"id":"e","action":"get","topic":"t","extra":[1,{"x":2}],'
                '"senderId":"mallory"}')
    assert c.recv_json() == answer("e", "get", data={"a": 3})
    c.close()


def test_id_is_echoed_as_sent(nginx):
    c = nginx.client()
    c.send_text('{"id":"\\u0041\\/\\"","action":"listTopics"}')
    assert raw(c) == ('{"id":"\\u0041\\/\\"","action":"listTopics",'
                      '"code":200,"data":null,"type":"response"}\n')
    c.send_text('{"action":"listTopics"}')
    assert c.recv_json() == answer("", "listTopics", data=None)
    c.close()


# -- requireAck ------------------------------------------------------------


def test_require_ack_rules(nginx):
    c = nginx.client()
    b = nginx.client()
    register(b, "s", {"a": None})
    quiet = [
        {"action": "registerTopic", "topic": "t", "data": {"a": None}},
        {"action": "registerTopic", "topic": "t", "data": {"a": 1}},
        {"action": "updateSchema", "topic": "t", "data": {"a": None}},
        {"action": "unsubscribeAll"},
        {"action": "subscribe", "topic": "s"},
        {"action": "unsubscribe", "topic": "s"},
        {"action": "subscribe", "topic": "t"},
        {"action": "sendWithoutSave", "topic": "t", "data": {"a": 0}},
        {"action": "publish", "topic": "t", "data": {"a": 1}},
        {"action": "unregisterTopic", "topic": "s"},
    ]
    for i, m in enumerate(quiet):
        m = dict(m, id="q%d" % i)
        if i % 2:
            m["requireAck"] = False
        c.send_json(m)
        if m["action"] in ("publish", "sendWithoutSave"):
            # subscribed: the delivery, but no answer
            d = c.recv_json()
            assert "type" not in d and d["id"] == m["id"], d
        sync(c, "sync%d" % i)
    # get and listTopics answer whatever requireAck says
    for ack in (None, False, True):
        m = {"id": "g", "action": "get", "topic": "t"}
        if ack is not None:
            m["requireAck"] = ack
        assert c.request(m) == answer("g", "get", data={"a": 1})
        m = {"id": "l", "action": "listTopics"}
        if ack is not None:
            m["requireAck"] = ack
        r = c.request(m)
        assert r["id"] == "l" and r["code"] == 200, r
    # errors are always sent
    c.send_json({"id": "e1", "action": "subscribe", "topic": "s",
                 "requireAck": False})
    assert c.recv_json() == answer("e1", "subscribe", 500,
                                   "topic doesn't exist for s")
    c.send_json({"id": "e2", "action": "publish", "topic": "t",
                 "data": {"b": 1}})
    assert c.recv_json() == answer(
        "e2", "publish", 400, "schema doesn't match topics current schema")
    c.close()
    b.close()


# -- validation ------------------------------------------------------------


def test_validation_order(nginx):
    c = nginx.client()
    cases = [
        # action, topic check first?
        ("subscribe", "topic"),
        ("unsubscribe", "topic"),
        ("get", "topic"),
        ("unregisterTopic", "topic"),
        ("publish", "topic"),
        ("registerTopic", "topic"),
        ("updateSchema", "data"),
        ("sendWithoutSave", "data"),
    ]
    for action, first in cases:
        c.send_json({"id": action, "action": action, "topic": " ",
                     "data": [1]})
        msg = ("no topic provided" if first == "topic" else
               "json: cannot unmarshal array into Go value of type "
               "map[string]interface {}")
        assert c.recv_json() == answer(action, action, 400, msg)
        c.send_json({"id": action, "action": action, "topic": "x" * 257})
        msg = ("topic name is longer than 256 bytes" if first == "topic"
               else "message data was null")
        assert c.recv_json() == answer(action, action, 400, msg)
    # these check nothing
    c.send_json({"id": "l", "action": "listTopics", "topic": " ",
                 "data": 5})
    assert c.recv_json() == answer("l", "listTopics", data=None)
    c.send_json({"id": "u", "action": "unsubscribeAll", "data": "x",
                 "requireAck": True})
    assert c.recv_json() == answer("u", "unsubscribeAll")
    c.send_json({"id": "u2", "action": "unsubscribeAll", "topic": "y" * 300,
                 "requireAck": True})
    assert c.recv_json() == answer("u2", "unsubscribeAll")
    c.close()


def test_topic_check(nginx):
    c = nginx.client()
    blanks = ['', ' ', '\\t\\n\\r\\f\\u000b ', '\\u00a0', '\\u0085',
              '\\u2003\\u3000', '\\u2028\\u205f\\u1680']
    for b in blanks:
        for action in ("get", "subscribe"):
            c.send_text('{"id":"b","action":"%s","topic":"%s"}'
                        % (action, b))
            assert c.recv_json() == answer("b", action, 400,
                                           "no topic provided"), b
    c.send_text('{"id":"b","action":"get"}')
    assert c.recv_json() == answer("b", "get", 400, "no topic provided")
    c.send_text('{"id":"b","action":"get","topic":null}')
    assert c.recv_json() == answer("b", "get", 400, "no topic provided")
    # not blank: a zero-width space is no space for Go
    c.send_text('{"id":"z","action":"get","topic":"\\u200b"}')
    assert c.recv_json() == answer(
        "z", "get", 500, "couldn't get value for topic. topic doesn't "
        "exist. topic: \u200b")
    # the length is counted in bytes of the decoded name
    for name, ok in (("x" * 256, True), ("x" * 257, False),
                     ("\u00e9" * 128, True), ("\u00e9" * 128 + "x", False)):
        r = c.request({"id": "r", "action": "registerTopic", "topic": name,
                       "data": {}, "requireAck": True})
        if ok:
            assert r == answer("r", "registerTopic", data={}), name
        else:
            assert r == answer("r", "registerTopic", 400,
                               "topic name is longer than 256 bytes")
    c.send_text('{"id":"e","action":"get","topic":"%s"}'
                % ("\\u00e9" * 128 + "x"))
    assert c.recv_json() == answer("e", "get", 400,
                                   "topic name is longer than 256 bytes")
    # names are used as they are: not trimmed, not folded
    r = c.request({"id": "g", "action": "get", "topic": " " + "x" * 255})
    assert r == answer("g", "get", 500, "couldn't get value for topic. "
                       "topic doesn't exist. topic:  " + "x" * 255)
    c.close()


def test_odd_topic_names(nginx):
    c = nginx.client(headers={"ClientId": "odd"})
    names = ["a\u0000b", "x}:msg", "{t:y}", "topics", "ctl", "\U0001F600",
             "a b\nc", "\\\"/"]
    subs = []
    for name in names:
        register(c, name, {"k": None})
        s = nginx.client()
        subscribe(s, name)
        subs.append(s)
    for i, name in enumerate(names):
        c.send_json({"id": str(i), "action": "publish", "topic": name,
                     "data": {"k": i}, "requireAck": True})
        assert c.recv_json() == answer(str(i), "publish")
    for i, name in enumerate(names):
        assert subs[i].recv_json() == {
            "id": str(i), "action": "publish", "topic": name,
            "data": {"k": i}, "senderId": "odd"}
        assert get(c, name) == answer("g", "get", data={"k": i})
    r = c.request({"id": "l", "action": "listTopics"})
    assert r == answer("l", "listTopics", data=[
        {"name": name, "schema": {"version": 0, "schema": {"k": None}}}
        for name in sorted(names, key=lambda x: x.encode())])
    assert nginx.status()["topics"] == {name: 1 for name in names}
    for x in subs + [c]:
        x.close()


def test_topic_length_limit_is_configurable(make_nginx):
    n = make_nginx(location="loom_max_topic_length 8;")
    c = n.client()
    r = c.request({"id": "r", "action": "registerTopic", "topic": "12345678",
                   "data": {}, "requireAck": True})
    assert r == answer("r", "registerTopic", data={})
    r = c.request({"id": "r", "action": "subscribe", "topic": "123456789"})
    assert r == answer("r", "subscribe", 400,
                       "topic name is longer than 8 bytes")
    c.close()


def test_data_check(nginx):
    c = nginx.client()
    register(c, "t", {"a": None})
    kinds = [
        ('"s"', "string"), ("1", "number"), ("-2.5e3", "number"),
        ("true", "bool"), ("false", "bool"), ("[]", "array"),
        ('[{"a":1}]', "array"),
    ]
    for action in ("publish", "sendWithoutSave", "registerTopic",
                   "updateSchema"):
        c.send_text('{"id":"d","action":"%s","topic":"t"}' % action)
        assert c.recv_json() == answer("d", action, 400,
                                       "message data was null")
        for value, kind in kinds:
            c.send_text('{"id":"d","action":"%s","topic":"t","data":%s}'
                        % (action, value))
            assert c.recv_json() == answer(
                "d", action, 400, "json: cannot unmarshal %s into Go value "
                "of type map[string]interface {}" % kind), value
        for value, number in (('{"a":1e400}', "1e400"),
                              ('{"a":[0,{"b":-2E+999}]}', "-2E+999"),
                              ('{"a":1e400,"b":1e500}', "1e400")):
            c.send_text('{"id":"d","action":"%s","topic":"t","data":%s}'
                        % (action, value))
            assert c.recv_json() == answer(
                "d", action, 400, "json: cannot unmarshal number %s into "
                "Go value of type float64" % number), value
        c.send_text('{"id":"d","action":"%s","topic":"t","data":null}'
                    % action)
        assert c.recv_json() == answer("d", action, 400,
                                       "data payload could not be parsed")
    # big but finite numbers are fine, and kept as sent
    c.send_text('{"id":"ok","action":"publish","topic":"t",'
                '"data":{"a":1.7976931348623157e308},"requireAck":true}')
    assert c.recv_json() == answer("ok", "publish")
    c.send_text('{"id":"g","action":"get","topic":"t"}')
    assert raw(c) == ('{"id":"g","action":"get","code":200,'
                      '"data":{"a":1.7976931348623157e308},'
                      '"type":"response"}\n')
    c.close()


# -- registerTopic, updateSchema, unregisterTopic, listTopics --------------


def test_register_topic(nginx):
    c = nginx.client()
    r = c.request({"id": "1", "action": "registerTopic", "topic": "t",
                   "data": {"a": None, "b": {"x": 0}}, "requireAck": True})
    assert r == answer("1", "registerTopic", data={})
    # the same keys again, whatever the values and the order
    r = c.request({"id": "2", "action": "registerTopic", "topic": "t",
                   "data": {"b": {"x": "q"}, "a": [1]}, "requireAck": True})
    assert r == answer("2", "registerTopic", data={})
    diff = "cannot register topic, topic already exists with different " \
           "schema. Try updating schema"
    for schema in ({"a": None}, {"a": None, "b": None, "c": None},
                   {"a": None, "B": {"x": 0}}, {"a": None, "b": 5},
                   {"a": None, "b": {"y": 0}}, {"a": None, "b": {}}, {}):
        r = c.request({"id": "3", "action": "registerTopic", "topic": "t",
                       "data": schema, "requireAck": True})
        assert r == answer("3", "registerTopic", 500, diff), schema
        c.send_json({"id": "3", "action": "registerTopic", "topic": "t",
                     "data": schema})
        assert c.recv_json() == answer("3", "registerTopic", 500, diff)
    # as in the original, only where the existing schema has an object is
    # the new one looked into
    r = c.request({"id": "4", "action": "registerTopic", "topic": "u",
                   "data": {"a": None}, "requireAck": True})
    assert r["code"] == 200
    r = c.request({"id": "5", "action": "registerTopic", "topic": "u",
                   "data": {"a": {"deep": 1}}, "requireAck": True})
    assert r == answer("5", "registerTopic", data={})
    # and the schema stays what it was
    r = c.request({"id": "l", "action": "listTopics"})
    assert r["data"] == [
        {"name": "t", "schema": {"version": 0,
                                 "schema": {"a": None, "b": {"x": 0}}}},
        {"name": "u", "schema": {"version": 0, "schema": {"a": None}}}]
    c.close()


def test_update_schema(nginx):
    c = nginx.client()
    r = c.request({"id": "u", "action": "updateSchema", "topic": "t",
                   "data": {"a": None}})
    assert r == answer("u", "updateSchema", 500,
                       "cannot update schema for topic t. Topic doesn't "
                       "exist")
    register(c, "t", {"a": None})
    publish(c, "t", {"a": 1})
    assert c.recv_json() == answer("p", "publish")
    r = c.request({"id": "u", "action": "updateSchema", "topic": "t",
                   "data": {"a": None, "b": None}, "requireAck": True})
    assert r == answer("u", "updateSchema")
    c.send_json({"id": "u2", "action": "updateSchema", "topic": "t",
                 "data": {"c": None}})
    sync(c)
    c.send_text('{"id":"u3","action":"updateSchema","topic":"t",'
                '"data":{"b": 2,  "a":{"x":1}},"requireAck":true}')
    assert c.recv_json() == answer("u3", "updateSchema")
    c.send_text('{"id":"l","action":"listTopics"}')
    assert raw(c) == ('{"id":"l","action":"listTopics","code":200,"data":'
                      '[{"name":"t","schema":{"version":3,"schema":'
                      '{"b": 2,  "a":{"x":1}}}}],"type":"response"}\n')
    # publishes are checked against the latest schema
    mismatch = "schema doesn't match topics current schema"
    for data in ({"a": 1}, {"c": 1}, {"a": {"y": 1}, "b": 1}):
        publish(c, "t", data)
        assert c.recv_json() == answer("p", "publish", 400, mismatch), data
    publish(c, "t", {"a": {"x": None}, "b": [1]})
    assert c.recv_json() == answer("p", "publish")
    # the stored value is not touched by a schema change
    assert get(c, "t") == answer("g", "get",
                                 data={"a": {"x": None}, "b": [1]})
    # registering the old key set now conflicts
    r = c.request({"id": "r", "action": "registerTopic", "topic": "t",
                   "data": {"a": None}})
    assert r["code"] == 500
    c.close()


def test_unregister_topic(nginx):
    c = nginx.client()
    missing = "cannot unregister topic. topic doesn't exist with name: t"
    r = c.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic", 500, missing)
    # the original hung here: everything still works, on every connection
    other = nginx.client()
    register(other, "t", {"a": None})
    r = c.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")
    r = c.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic", 500, missing)
    assert sync(other)["data"] is None
    r = get(other, "t")
    assert r == answer("g", "get", 500, "couldn't get value for topic. "
                       "topic doesn't exist. topic: t")
    # registered again: any schema, no old value
    register(other, "t", {"z": None})
    assert get(other, "t") == answer("g", "get", data=None)
    c.close()
    other.close()


def test_unregister_drops_subscribers_silently(nginx):
    a = nginx.client()
    b = nginx.client(headers={"ClientId": "bob"})
    register(a, "t", {"n": None})
    register(a, "u", {"n": None})
    subscribe(b, "t")
    subscribe(b, "u")
    publish(a, "t", {"n": 1})
    assert b.recv_json()["data"] == {"n": 1}
    assert a.recv_json() == answer("p", "publish")
    r = a.request({"id": "d", "action": "unregisterTopic", "topic": "t",
                   "requireAck": True})
    assert r == answer("d", "unregisterTopic")
    wait_for(lambda: "t" not in nginx.status()["topics"],
             what="the subscription to go")
    register(a, "t", {"n": None})
    publish(a, "t", {"n": 2})
    assert a.recv_json() == answer("p", "publish")
    publish(a, "u", {"n": 3}, rid="pu")
    assert a.recv_json() == answer("pu", "publish")
    # b heard nothing of t: its next message is the one on u
    d = b.recv_json()
    assert (d["topic"], d["data"]) == ("u", {"n": 3})
    r = b.request({"id": "x", "action": "unsubscribe", "topic": "t"})
    assert r == answer("x", "unsubscribe", 500, "cannot unsubscribe client "
                       "from topic. client is not subscribed to topic. "
                       "topic: t, client: bob")
    a.close()
    b.close()


def test_list_topics(nginx):
    c = nginx.client()
    c.send_json({"id": "l", "action": "listTopics", "requireAck": False})
    assert raw(c) == ('{"id":"l","action":"listTopics","code":200,'
                      '"data":null,"type":"response"}\n')
    names = ["b", "a", "\u00e9", "B", "a b", "aa", "Z\"q"]
    for i, name in enumerate(names):
        register(c, name, {"k%d" % i: None})
    c.send_json({"id": "m", "action": "updateSchema", "topic": "aa",
                 "data": {"v": 1}})
    r = c.request({"id": "l", "action": "listTopics"})
    expect = []
    for name in sorted(names, key=lambda s: s.encode()):
        i = names.index(name)
        if name == "aa":
            expect.append({"name": name, "schema": {"version": 1,
                                                    "schema": {"v": 1}}})
        else:
            expect.append({"name": name, "schema": {
                "version": 0, "schema": {"k%d" % i: None}}})
    assert r == answer("l", "listTopics", data=expect)
    c.close()


# -- subscribe, unsubscribe, unsubscribeAll --------------------------------


def test_subscribe(nginx):
    a = nginx.client()
    b = nginx.client()
    r = b.request({"id": "s", "action": "subscribe", "topic": "t",
                   "data": {"ignored": 1}, "requireAck": True})
    assert r == answer("s", "subscribe", 500, "topic doesn't exist for t")
    register(a, "t", {"n": None})
    r = b.request({"id": "s", "action": "subscribe", "topic": "t",
                   "data": {"ignored": 1}, "requireAck": True})
    assert r == answer("s", "subscribe")
    # twice is fine, and still one delivery per message
    assert b.request({"id": "s2", "action": "subscribe", "topic": "t",
                      "requireAck": True}) == answer("s2", "subscribe")
    b.send_json({"id": "s3", "action": "subscribe", "topic": "t"})
    sync(b)
    for i in range(2):
        publish(a, "t", {"n": i}, rid="p%d" % i, ack=False)
    for i in range(2):
        d = b.recv_json()
        assert d == {"id": "p%d" % i, "action": "publish", "topic": "t",
                     "data": {"n": i}, "senderId": d["senderId"]}
    # no replay of the current value on subscribe
    c = nginx.client()
    subscribe(c, "t")
    publish(a, "t", {"n": 9}, rid="p9", ack=False)
    assert c.recv_json()["id"] == "p9"
    assert b.recv_json()["id"] == "p9"
    for x in (a, b, c):
        x.close()


def test_subscription_limit_default(nginx):
    c = nginx.client()
    n = 1025
    for i in range(n):
        c.send_json({"id": "r", "action": "registerTopic", "topic": "t%d" % i,
                     "data": {}})
    for i in range(n - 1):
        c.send_json({"id": "s", "action": "subscribe", "topic": "t%d" % i})
    sync(c)
    r = c.request({"id": "s", "action": "subscribe", "topic": "t1024"})
    assert r == answer("s", "subscribe", 400, "too many subscriptions on "
                       "this connection, the limit is 1024")
    # a topic already subscribed is still fine
    r = c.request({"id": "s", "action": "subscribe", "topic": "t7",
                   "requireAck": True})
    assert r == answer("s", "subscribe")
    assert nginx.status()["subscriptions"] == 1024
    r = c.request({"id": "u", "action": "unsubscribe", "topic": "t7",
                   "requireAck": True})
    assert r == answer("u", "unsubscribe")
    r = c.request({"id": "s", "action": "subscribe", "topic": "t1024",
                   "requireAck": True})
    assert r == answer("s", "subscribe")
    c.close()


def test_subscription_limit_configured(make_nginx):
    n = make_nginx(location="loom_max_subscriptions 2;")
    c = n.client()
    for t in ("a", "b", "c"):
        register(c, t, {})
    subscribe(c, "a")
    subscribe(c, "b")
    r = c.request({"id": "s", "action": "subscribe", "topic": "c",
                   "requireAck": True})
    assert r == answer("s", "subscribe", 400, "too many subscriptions on "
                       "this connection, the limit is 2")
    # the limit is per connection
    d = n.client()
    subscribe(d, "c")
    c.close()
    d.close()


def test_unsubscribe(nginx):
    a = nginx.client(headers={"ClientId": "ann"})
    r = a.request({"id": "u", "action": "unsubscribe", "topic": "t",
                   "requireAck": True})
    assert r == answer("u", "unsubscribe", 500, "cannot unsubscribe client "
                       "from topic. topic doesn't exits. topic: t, "
                       "client: ann")
    register(a, "t", {"n": None})
    register(a, "v", {"n": None})
    r = a.request({"id": "u", "action": "unsubscribe", "topic": "t"})
    assert r == answer("u", "unsubscribe", 500, "cannot unsubscribe client "
                       "from topic. client is not subscribed to topic. "
                       "topic: t, client: ann")
    subscribe(a, "t")
    subscribe(a, "v")
    r = a.request({"id": "u", "action": "unsubscribe", "topic": "t",
                   "requireAck": True})
    assert r == answer("u", "unsubscribe")
    publish(a, "t", {"n": 1})
    assert a.recv_json() == answer("p", "publish")
    publish(a, "v", {"n": 2}, rid="pv")
    d = a.recv_json()
    assert (d["id"], d["topic"]) == ("pv", "v")
    assert a.recv_json() == answer("pv", "publish")
    # the second time it is an error again
    r = a.request({"id": "u", "action": "unsubscribe", "topic": "t"})
    assert r == answer("u", "unsubscribe", 500, "cannot unsubscribe client "
                       "from topic. client is not subscribed to topic. "
                       "topic: t, client: ann")
    a.close()


def test_unsubscribe_all(nginx):
    a = nginx.client()
    b = nginx.client()
    for t in ("t1", "t2", "t3"):
        register(a, t, {})
        subscribe(b, t)
    subscribe(a, "t3")
    r = b.request({"id": "ua", "action": "unsubscribeAll",
                   "requireAck": True})
    assert r == answer("ua", "unsubscribeAll")
    assert nginx.status()["topics"] == {"t3": 1}
    for t in ("t1", "t2", "t3"):
        publish(a, t, {}, rid=t)
    assert a.recv_json() == answer("t1", "publish")
    assert a.recv_json() == answer("t2", "publish")
    assert a.recv_json()["id"] == "t3"
    assert a.recv_json() == answer("t3", "publish")
    # nothing to unsubscribe from is fine too, and a topic is ignored
    r = b.request({"id": "ua2", "action": "unsubscribeAll", "topic": "t1",
                   "requireAck": True})
    assert r == answer("ua2", "unsubscribeAll")
    subscribe(b, "t2")
    publish(a, "t2", {}, rid="last", ack=False)
    assert b.recv_json()["id"] == "last"
    a.close()
    b.close()


# -- publish, sendWithoutSave, get -----------------------------------------


def test_publish(nginx):
    a = nginx.client(headers={"ClientId": "pub"})
    b = nginx.client()
    r = a.request({"id": "p", "action": "publish", "topic": "t",
                   "data": {"n": 1}, "requireAck": True})
    assert r == answer("p", "publish", 400, "could not get topic by name: t")
    sync(a)  # and only that one answer
    register(a, "t", {"n": None})
    subscribe(b, "t")
    c = nginx.client()
    publish(a, "t", {"n": 1})
    assert a.recv_json() == answer("p", "publish")
    # acknowledged means stored: another connection sees it at once
    assert get(c, "t") == answer("g", "get", data={"n": 1})
    assert b.recv_json() == {"id": "p", "action": "publish", "topic": "t",
                             "data": {"n": 1}, "senderId": "pub"}
    # a rejected publish: one answer, not delivered, not stored
    publish(a, "t", {"m": 2}, rid="bad")
    assert a.recv_json() == answer(
        "bad", "publish", 400, "schema doesn't match topics current schema")
    sync(a)
    publish(a, "t", {"m": 2}, rid="bad2", ack=False)
    assert a.recv_json() == answer(
        "bad2", "publish", 400, "schema doesn't match topics current schema")
    assert get(b, "t") == answer("g", "get", data={"n": 1})
    publish(a, "t", {"n": 3}, rid="good", ack=False)
    assert b.recv_json()["id"] == "good"
    assert get(a, "t") == answer("g", "get", data={"n": 3})
    a.close()
    b.close()
    c.close()


def test_publisher_sees_its_delivery_before_its_ack(nginx):
    a = nginx.client(headers={"ClientId": "me"})
    register(a, "t", {"n": None})
    subscribe(a, "t")
    n = 50
    for i in range(n):
        publish(a, "t", {"n": i}, rid="p%d" % i,
                action="publish" if i % 3 else "sendWithoutSave")
    frames = [a.recv_json() for _ in range(2 * n)]
    deliveries = [f for f in frames if "type" not in f]
    acks = [f for f in frames if "type" in f]
    assert deliveries == [
        {"id": "p%d" % i, "action": "publish" if i % 3 else "sendWithoutSave",
         "topic": "t", "data": {"n": i}, "senderId": "me"}
        for i in range(n)]
    assert acks == [answer("p%d" % i,
                           "publish" if i % 3 else "sendWithoutSave")
                    for i in range(n)]
    for i in range(n):
        assert frames.index(deliveries[i]) < frames.index(acks[i]), i
    a.close()


def test_send_without_save(nginx):
    a = nginx.client(headers={"ClientId": "snd"})
    b = nginx.client()
    r = a.request({"id": "s", "action": "sendWithoutSave", "topic": "t",
                   "data": {"n": 1}})
    assert r == answer("s", "sendWithoutSave", 400,
                       "could not get topic by name: t")
    sync(a)
    register(a, "t", {"n": None})
    subscribe(b, "t")
    publish(a, "t", {"n": 1}, rid="s", action="sendWithoutSave")
    assert a.recv_json() == answer("s", "sendWithoutSave")
    assert b.recv_json() == {"id": "s", "action": "sendWithoutSave",
                             "topic": "t", "data": {"n": 1},
                             "senderId": "snd"}
    # not stored: nothing was ever published
    assert get(b, "t") == answer("g", "get", data=None)
    publish(a, "t", {"n": 2})
    assert a.recv_json() == answer("p", "publish")
    assert b.recv_json()["data"] == {"n": 2}
    publish(a, "t", {"n": 3}, rid="s2", action="sendWithoutSave")
    assert a.recv_json() == answer("s2", "sendWithoutSave")
    assert b.recv_json()["data"] == {"n": 3}
    assert get(b, "t") == answer("g", "get", data={"n": 2})
    # schema mismatch: one answer, not delivered
    publish(a, "t", {"x": 3}, rid="bad", action="sendWithoutSave")
    assert a.recv_json() == answer(
        "bad", "sendWithoutSave", 400,
        "schema doesn't match topics current schema")
    publish(a, "t", {"n": 4}, rid="s3", action="sendWithoutSave", ack=False)
    assert b.recv_json()["id"] == "s3"
    a.close()
    b.close()


def test_get(nginx):
    c = nginx.client()
    assert get(c, "t") == answer("g", "get", 500, "couldn't get value for "
                                 "topic. topic doesn't exist. topic: t")
    register(c, "t", {"a": None, "b": {"deep": None}})
    assert get(c, "t") == answer("g", "get", data=None)
    publish(c, "t", {"a": "x", "b": {"deep": [1, None]}})
    assert c.recv_json() == answer("p", "publish")
    assert get(c, "t") == answer("g", "get",
                                 data={"a": "x", "b": {"deep": [1, None]}})
    c.close()


SCHEMA_CASES = [
    ({"a": None, "b": None}, [
        ({"a": 1, "b": "x"}, True),
        ({"b": [1, 2], "a": None}, True),
        ({"a": 1}, False),
        ({"a": 1, "b": 2, "c": 3}, False),
        ({"a": 1, "c": 2}, False),
        ({"A": 1, "b": 2}, False),
        ({"a": {"x": 1}, "b": 2}, False),
        ({}, False),
    ]),
    ({"a": {"x": 0, "y": 0}, "b": ""}, [
        ({"a": {"x": 1, "y": []}, "b": 5}, True),
        ({"a": 5, "b": "q"}, True),
        ({"a": None, "b": "q"}, True),
        ({"a": [], "b": "q"}, True),
        ({"a": {"x": 1}, "b": "q"}, False),
        ({"a": {"x": 1, "y": 2, "z": 3}, "b": "q"}, False),
        ({"a": {"x": {"d": 1}, "y": 2}, "b": "q"}, False),
        ({"a": {"y": {}, "x": 1}, "b": "q"}, False),
    ]),
    ({"l": [{"k": 1}]}, [
        ({"l": "str"}, True),
        ({"l": []}, True),
        ({"l": {"k": 1}}, False),
    ]),
    ({}, [
        ({}, True),
        ({"a": 1}, False),
    ]),
    ({"o": {"p": {"q": None}}}, [
        ({"o": {"p": {"q": {"deeper": 1}}}}, False),
        ({"o": {"p": {"q": 1}}}, True),
        ({"o": {"p": {"r": 1}}}, False),
        ({"o": {"p": 7}}, True),
    ]),
]


def test_schema_rule(nginx):
    c = nginx.client()
    mismatch = "schema doesn't match topics current schema"
    for i, (schema, cases) in enumerate(SCHEMA_CASES):
        topic = "s%d" % i
        register(c, topic, schema)
        for data, ok in cases:
            for action in ("publish", "sendWithoutSave"):
                publish(c, topic, data, action=action)
                want = (answer("p", action) if ok else
                        answer("p", action, 400, mismatch))
                assert c.recv_json() == want, (schema, data, action)
    c.close()


# -- ordering on one connection --------------------------------------------


def test_answers_and_effects_in_request_order(nginx):
    c = nginx.client(headers={"ClientId": "o"})
    frames = [
        '{"id":"1","action":"registerTopic","topic":"t","data":{"n":null},'
        '"requireAck":true}',
        '{"id":"2","action":"get","topic":" "}',
        '{"id":"3","action":"subscribe","topic":"t","requireAck":true}',
        '{"id":"4","action":"publish","topic":"t","data":{"n":4},'
        '"requireAck":true}',
        '{"id":"5","action":"get","topic":"t"}',
        '{"id":"6","action":"nope"}',
        '{"id":"7","action":"listTopics"}',
        'hello',
        '{"id":"9","action":"sendWithoutSave","topic":"t","data":{"n":9},'
        '"requireAck":true}',
        '{"id":"10","action":"get","topic":"t"}',
        '{"id":"11","action":"unsubscribe","topic":"t","requireAck":true}',
        '{"id":"12","action":"publish","topic":"t","data":{"n":12},'
        '"requireAck":true}',
        '{"id":"13","action":"updateSchema","topic":"t","data":{"m":null},'
        '"requireAck":true}',
        '{"id":"14","action":"publish","topic":"t","data":{"n":14},'
        '"requireAck":true}',
        '{"id":"15","action":"unregisterTopic","topic":"t",'
        '"requireAck":true}',
        '{"id":"16","action":"get","topic":"t"}',
    ]
    # one write: every request is there before the first answer
    c.send_raw(b"".join(encode_frame(1, f) for f in frames))

    def delivery(rid, action, n):
        return {"id": rid, "action": action, "topic": "t", "data": {"n": n},
                "senderId": "o"}

    expect = [
        answer("1", "registerTopic", data={}),
        answer("2", "get", 400, "no topic provided"),
        answer("3", "subscribe"),
        delivery("4", "publish", 4),
        answer("4", "publish"),
        answer("5", "get", data={"n": 4}),
        answer("6", "nope", 400, "unknown action: nope"),
        answer("7", "listTopics", data=[{"name": "t", "schema": {
            "version": 0, "schema": {"n": None}}}]),
        answer("UNKNOWN", "UNKNOWN", 400,
               "invalid character 'h' looking for beginning of value"),
        delivery("9", "sendWithoutSave", 9),
        answer("9", "sendWithoutSave"),
        answer("10", "get", data={"n": 4}),
        answer("11", "unsubscribe"),
        answer("12", "publish"),
        answer("13", "updateSchema"),
        answer("14", "publish", 400,
               "schema doesn't match topics current schema"),
        answer("15", "unregisterTopic"),
        answer("16", "get", 500, "couldn't get value for topic. topic "
               "doesn't exist. topic: t"),
    ]
    got = [c.recv_json() for _ in expect]
    # answers in request order
    assert [f for f in got if "type" in f] == \
        [f for f in expect if "type" in f]
    # deliveries in order, each after the subscribe and before its ack;
    # a delivery may overtake answers to earlier requests still waiting
    # for Redis
    assert [f for f in got if "type" not in f] == \
        [f for f in expect if "type" not in f]
    pos = {(f["id"], "type" in f): i for i, f in enumerate(got)}
    assert pos[("3", True)] < pos[("4", False)] < pos[("4", True)]
    assert pos[("9", False)] < pos[("9", True)]
    sync(c)
    c.close()


def test_unsubscribe_after_publish_still_gets_the_delivery(nginx):
    c = nginx.client(headers={"ClientId": "u"})
    register(c, "t", {"n": None})
    register(c, "v", {"n": None})
    for ack in (True, False):
        subscribe(c, "t")
        subscribe(c, "v")
        frames = [
            {"id": "p", "action": "publish", "topic": "t", "data": {"n": 1},
             "requireAck": ack},
            {"id": "s", "action": "sendWithoutSave", "topic": "v",
             "data": {"n": 2}, "requireAck": ack},
            {"id": "u", "action": "unsubscribe", "topic": "t",
             "requireAck": True},
            {"id": "ua", "action": "unsubscribeAll", "requireAck": True},
            {"id": "p2", "action": "publish", "topic": "t", "data": {"n": 3},
             "requireAck": True},
        ]
        c.send_raw(b"".join(encode_frame(1, json.dumps(m)) for m in frames))
        got = [c.recv_json() for _ in range(7 if ack else 5)]
        assert [f for f in got if "type" not in f] == [
            {"id": "p", "action": "publish", "topic": "t", "data": {"n": 1},
             "senderId": "u"},
            {"id": "s", "action": "sendWithoutSave", "topic": "v",
             "data": {"n": 2}, "senderId": "u"}]
        assert [f for f in got if "type" in f] == (
            [answer("p", "publish"), answer("s", "sendWithoutSave")]
            if ack else []) + [answer("u", "unsubscribe"),
                               answer("ua", "unsubscribeAll"),
                               answer("p2", "publish")]
        sync(c)


def test_local_requests_queued_behind_a_subscribe(nginx):
    c = nginx.client()
    register(c, "t", {"n": None})
    register(c, "v", {"n": None})
    frames = [{"id": "s", "action": "subscribe", "topic": "t",
               "requireAck": True}]
    expect = [answer("s", "subscribe")]
    for i in range(8):
        frames.append({"id": "ua%d" % i, "action": "unsubscribeAll",
                       "requireAck": True})
        expect.append(answer("ua%d" % i, "unsubscribeAll"))
        frames.append({"id": "s%d" % i, "action": "subscribe",
                       "topic": "tv"[i % 2], "requireAck": True})
        expect.append(answer("s%d" % i, "subscribe"))
        frames.append({"id": "l%d" % i, "action": "listTopics"})
        expect.append(answer("l%d" % i, "listTopics", data=[
            {"name": "t", "schema": {"version": 0, "schema": {"n": None}}},
            {"name": "v", "schema": {"version": 0, "schema": {"n": None}}}]))
        frames.append({"id": "e%d" % i, "action": "get"})
        expect.append(answer("e%d" % i, "get", 400, "no topic provided"))
    c.send_raw(b"".join(encode_frame(1, json.dumps(m)) for m in frames))
    assert [c.recv_json() for _ in expect] == expect
    # the last subscribe (to v) is the only one left
    assert nginx.status()["topics"] == {"v": 1}
    c.close()


def test_schema_changes_take_effect_in_order(nginx):
    c = nginx.client()
    register(c, "t", {"a": None})
    # this worker now knows the schema {"a"}
    c.send_json({"id": "p0", "action": "publish", "topic": "t",
                 "data": {"a": 0}, "requireAck": True})
    assert c.recv_json() == answer("p0", "publish")
    mismatch = "schema doesn't match topics current schema"
    steps = [
        ({"action": "updateSchema", "data": {"b": None}}, 200, None),
        ({"action": "publish", "data": {"b": 1}}, 200, None),
        ({"action": "publish", "data": {"a": 1}}, 400, mismatch),
        ({"action": "sendWithoutSave", "data": {"b": 2}}, 200, None),
        ({"action": "unregisterTopic"}, 200, None),
        ({"action": "publish", "data": {"b": 3}}, 400,
         "could not get topic by name: t"),
        ({"action": "registerTopic", "data": {"z": None}}, 200, None),
        ({"action": "publish", "data": {"z": 4}}, 200, None),
        ({"action": "publish", "data": {"b": 5}}, 400, mismatch),
        ({"action": "updateSchema", "data": {"b": None}}, 200, None),
        ({"action": "publish", "data": {"b": 6}}, 200, None),
        ({"action": "get"}, 200, None),
    ]
    frames = []
    expect = []
    for i, (m, code, message) in enumerate(steps):
        m = dict(m, id=str(i), topic="t", requireAck=True)
        frames.append(encode_frame(1, json.dumps(m)))
        extra = {}
        if m["action"] == "registerTopic":
            extra["data"] = {}
        if m["action"] == "get":
            extra["data"] = {"b": 6}
        expect.append(answer(str(i), m["action"], code, message, **extra))
    c.send_raw(b"".join(frames))
    assert [c.recv_json() for _ in expect] == expect
    c.close()


def test_subscribe_right_after_unregister(nginx):
    a = nginx.client()
    b = nginx.client()
    register(a, "t", {"n": None})
    # b keeps the topic's channel live on this worker
    subscribe(b, "t")
    subscribe(a, "t")
    frames = [
        {"id": "d", "action": "unregisterTopic", "topic": "t",
         "requireAck": True},
        {"id": "s", "action": "subscribe", "topic": "t", "requireAck": True},
        {"id": "r", "action": "registerTopic", "topic": "t",
         "data": {"m": None}, "requireAck": True},
        {"id": "s2", "action": "subscribe", "topic": "v",
         "requireAck": True},
    ]
    a.send_raw(b"".join(encode_frame(1, json.dumps(m)) for m in frames))
    assert [a.recv_json() for _ in frames] == [
        answer("d", "unregisterTopic"),
        answer("s", "subscribe", 500, "topic doesn't exist for t"),
        answer("r", "registerTopic", data={}),
        answer("s2", "subscribe", 500, "topic doesn't exist for v")]
    wait_for(lambda: nginx.status()["subscriptions"] == 0,
             what="the old subscriptions to go")
    a.close()
    b.close()


def test_many_pipelined_requests_keep_order(nginx):
    c = nginx.client()
    register(c, "t", {"n": None})
    out = []
    expect = []
    for i in range(300):
        k = i % 4
        if k == 0:
            out.append({"id": str(i), "action": "publish", "topic": "t",
                        "data": {"n": i}, "requireAck": True})
            expect.append(answer(str(i), "publish"))
        elif k == 1:
            out.append({"id": str(i), "action": "get", "topic": "t"})
            expect.append(answer(str(i), "get", data={"n": i - 1}))
        elif k == 2:
            out.append({"id": str(i), "action": "get", "topic": ""})
            expect.append(answer(str(i), "get", 400, "no topic provided"))
        else:
            out.append({"id": str(i), "action": "publish", "topic": "t",
                        "data": {"x": i}})
            expect.append(answer(str(i), "publish", 400,
                                 "schema doesn't match topics current "
                                 "schema"))
    c.send_raw(b"".join(encode_frame(1, json.dumps(m)) for m in out))
    got = [c.recv_json() for _ in expect]
    assert got == expect
    c.close()


# -- ClientId --------------------------------------------------------------


def test_client_id_conflict(nginx):
    a = nginx.client(headers={"ClientId": "dup"})
    with pytest.raises(HandshakeError) as e:
        nginx.client(headers={"ClientId": "dup"})
    assert e.value.status == 409
    assert e.value.body == b"client ID already exists\n"
    # the first is fine
    assert sync(a)["code"] == 200
    # ids are case-sensitive, and the header name is not
    b = nginx.client(headers={"ClientId": "DUP"})
    with pytest.raises(HandshakeError) as e:
        nginx.client(headers={"clientid": "dup"})
    assert e.value.status == 409
    a.close()
    # once the first is gone the id is free again
    c = nginx.client(headers={"ClientId": "dup"})
    assert sync(c)["code"] == 200
    c.close()
    b.close()


def test_client_id_checks(nginx):
    for value, body in (("x" * 257, b'"ClientId" is longer than 256 bytes\n'),
                        ("a\x01b", b'"ClientId" has a control character\n')):
        with pytest.raises(HandshakeError) as e:
            nginx.client(headers={"ClientId": value})
        assert (e.value.status, e.value.body) == (400, body)
    c = nginx.client(headers={"ClientId": "y" * 256})
    assert sync(c)["code"] == 200
    c.close()
