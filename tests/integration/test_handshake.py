"""The opening handshake (RFC 6455, section 4): what is accepted, what is
refused with which HTTP status, and bytes sent right behind the request."""

import base64
import hashlib
import os

import pytest

from wsclient import GUID, HandshakeError, WSClient, TEXT


def raw_client(nginx):
    return WSClient("127.0.0.1", nginx.port, connect=False)


def refused(nginx, headers=None, request=None):
    c = raw_client(nginx)
    with pytest.raises(HandshakeError) as e:
        c.handshake(headers or {}, request=request)
    c.abort()
    return e.value


def test_accept_value_and_headers(nginx):
    c = raw_client(nginx)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    hdrs = c.handshake({"Sec-WebSocket-Key": key})
    # the example of RFC 6455, section 1.3
    assert hdrs["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert hdrs["upgrade"].lower() == "websocket"
    assert hdrs["connection"].lower() == "upgrade"
    assert "content-length" not in hdrs
    assert "sec-websocket-protocol" not in hdrs
    c.close()


def test_connection_header_token_list(nginx):
    c = raw_client(nginx)
    c.handshake({"Connection": "keep-alive, Upgrade",
                 "Upgrade": "WebSocket"})
    c.close()


def test_wrong_version_is_426(nginx):
    e = refused(nginx, {"Sec-WebSocket-Version": "8"})
    assert e.status == 426
    assert e.headers["sec-websocket-version"] == "13"


def test_missing_version_is_426(nginx):
    e = refused(nginx, {"Sec-WebSocket-Version": None})
    assert e.status == 426
    assert e.headers["sec-websocket-version"] == "13"


def test_post_is_405(nginx):
    request = ("POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    e = refused(nginx, request=request)
    assert e.status == 405
    assert e.headers["allow"] == "GET"


@pytest.mark.parametrize("headers,body", [
    ({"Upgrade": None}, b'missing "Upgrade: websocket"\n'),
    ({"Upgrade": "h2c"}, b'missing "Upgrade: websocket"\n'),
    ({"Connection": None}, b'missing "Connection: Upgrade"\n'),
    ({"Connection": "keep-alive"}, b'missing "Connection: Upgrade"\n'),
    ({"Sec-WebSocket-Key": None}, b'missing "Sec-WebSocket-Key"\n'),
    ({"Sec-WebSocket-Key": "short"}, b'invalid "Sec-WebSocket-Key"\n'),
    # 24 characters, but not base64 of 16 bytes
    ({"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="},
     b'invalid "Sec-WebSocket-Key"\n'),
    ({"Sec-WebSocket-Key": base64.b64encode(b"x" * 17).decode()[:24]},
     b'invalid "Sec-WebSocket-Key"\n'),
])
def test_bad_requests_are_400(nginx, headers, body):
    e = refused(nginx, headers)
    assert e.status == 400
    assert e.body == body
    assert e.headers["content-type"] == "text/plain; charset=utf-8"


def test_http10_is_400(nginx):
    request = ("GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode()
    e = refused(nginx, request=request)
    assert e.status == 400
    assert e.body == b"the websocket handshake needs HTTP/1.1\n"


def test_body_is_400(nginx):
    e = refused(nginx, {"Content-Length": "5"})
    assert e.status == 400
    assert e.body == b"the websocket handshake has no body\n"


def test_plain_get_is_400(nginx):
    request = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
    e = refused(nginx, request=request)
    assert e.status == 400


def frame(payload):
    """A masked text frame, built by hand."""
    mask = os.urandom(4)
    data = payload.encode()
    return (bytes([0x81, 0x80 | len(data)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def test_bytes_behind_the_handshake_are_kept(nginx):
    c = raw_client(nginx)
    extra = (frame('{"id":"a","action":"listTopics"}')
             + frame('{"id":"b","action":"listTopics"}'))
    c.handshake({}, extra=extra)
    assert c.recv_json()["id"] == "a"
    assert c.recv_json()["id"] == "b"
    c.close()


def test_partial_frame_behind_the_handshake(nginx):
    c = raw_client(nginx)
    f = frame('{"id":"split","action":"listTopics"}')
    c.handshake({}, extra=f[:5])
    c.send_raw(f[5:])
    assert c.recv_json()["id"] == "split"
    c.close()


def test_handshake_sent_byte_by_byte(nginx):
    c = raw_client(nginx)
    key = base64.b64encode(os.urandom(16)).decode()
    request = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: %s\r\n\r\n" % key).encode()
    for b in request[:-1]:
        c.send_raw(bytes([b]))
    c.handshake({}, request=request[-1:], key=key)
    want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    assert c.response_headers["sec-websocket-accept"] == want.decode()
    c.send_frame(TEXT, '{"id":"x","action":"listTopics"}')
    assert c.recv_json()["id"] == "x"
    c.close()


def test_other_locations_are_untouched(make_nginx):
    import urllib.request
    n = make_nginx(server='location = /other { return 200 "plain\\n"; }')
    with urllib.request.urlopen("http://127.0.0.1:%d/other" % n.port) as r:
        assert r.status == 200
        assert r.read() == b"plain\n"
