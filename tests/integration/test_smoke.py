"""The broker answers over ws: the shortest path through every layer."""

from conftest import register, subscribe


def test_publish_reaches_subscriber(nginx):
    a = nginx.client(headers={"ClientId": "alice"})
    b = nginx.client()
    register(a, "smoke", {"n": None})
    subscribe(b, "smoke")
    a.send_json({"id": "p1", "action": "publish", "topic": "smoke",
                 "data": {"n": 1}, "requireAck": True})
    assert a.recv_json() == {"id": "p1", "action": "publish", "code": 200,
                             "type": "response"}
    d = b.recv_json()
    assert d == {"id": "p1", "action": "publish", "topic": "smoke",
                 "data": {"n": 1}, "senderId": "alice"}
    a.close()
    b.close()
