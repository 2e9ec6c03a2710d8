"""The protocol smoke shared by the tests that load the module into an
nginx laid out differently from conftest's: register, subscribe, publish,
get, each answer compared whole."""

from wsclient import WSClient


def protocol_smoke(host, port, path="/ws", tls=False, headers=None,
                   topic="smoke"):
    """Runs the smoke on two connections; returns nothing, asserts."""
    ha = {"ClientId": "alice"}
    ha.update(headers or {})
    a = WSClient(host, port, path=path, tls=tls, headers=ha)
    b = WSClient(host, port, path=path, tls=tls, headers=headers)

    r = a.request({"id": "r", "action": "registerTopic", "topic": topic,
                   "data": {"n": None}, "requireAck": True})
    assert r["code"] == 200, r
    r = b.request({"id": "s", "action": "subscribe", "topic": topic,
                   "requireAck": True})
    assert r["code"] == 200, r

    r = a.request({"id": "p", "action": "publish", "topic": topic,
                   "data": {"n": 7}, "requireAck": True})
    assert r == {"id": "p", "action": "publish", "code": 200,
                 "type": "response"}, r
    d = b.recv_json()
    assert d == {"id": "p", "action": "publish", "topic": topic,
                 "data": {"n": 7}, "senderId": "alice"}, d

    r = b.request({"id": "g", "action": "get", "topic": topic})
    assert r == {"id": "g", "action": "get", "code": 200,
                 "data": {"n": 7}, "type": "response"}, r

    a.close()
    b.close()
